"""Every daemon setting, declared once: name, flag, default, type, help, validation.

`weft coordinator|storage|compute` build their options from these records
(weft.cli.daemons), the local-cluster launcher turns the same flags into a
JSON config for weft.localcluster.launch, and tests/daemons/test_settings.py
checks the Ansible role's flags against them. A new setting is one `Setting`
here, in COMMON or its role's list, and a keyword the role class (or a field
NodeConfig) already takes.

Kept free of trio and zmq imports: the client and the CLI import it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

DEFAULT_COORDINATOR = "tcp://127.0.0.1:5570"
DEFAULT_LISTEN = "tcp://127.0.0.1:0"
DEFAULT_BEACON_ADDR = "127.255.255.255"
DEFAULT_BEACON_PORT = 5670
ROLES = ("coordinator", "storage", "compute")


class SettingError(ValueError):
    """A setting's value is not valid: the message is one line for the user."""


_LISTENABLE = re.compile(r"tcp://(?:\[[0-9a-fA-F:.]+\]|\*|[A-Za-z0-9_.-]+):([0-9]{1,5})|ipc://[^\x00]+|inproc://[^\x00]+")


def is_endpoint(value: str) -> bool:
    """An endpoint a peer can connect to (port 1..65535)."""
    from weft.bus.endpoint import is_connectable

    return is_connectable(value)


def is_listenable(value: str) -> bool:
    """An endpoint to bind: also a wildcard host or port 0 (ephemeral)."""
    m = _LISTENABLE.fullmatch(value)
    return m is not None and (m.group(1) is None or int(m.group(1)) < 65536)


def _duration(v: str) -> float:
    from weft.actors.durations import parse_duration

    return parse_duration(v, "--keep")


def _is_duration(v: str) -> bool:
    from weft.actors.durations import DurationError

    try:
        _duration(v)
    except DurationError:
        return False
    return True


def _windows(v: str) -> list[list[str]]:
    """`allow Mon-Fri 18:00-08:00; deny Sat-Sun` as [[kind, rule], ...]."""
    from weft.actors.windows import parse_rule

    out = []
    for part in filter(None, (p.strip() for p in v.split(";"))):
        kind, _, rule = part.partition(" ")
        if kind not in ("allow", "deny"):
            raise ValueError(part)
        parse_rule(rule, f"--{kind}")
        out.append([kind, rule.strip()])
    return out


def _is_windows(v: str) -> bool:
    from weft.actors.model import SpecError

    try:
        _windows(v)
    except (SpecError, ValueError):
        return False
    return True
def _size(v: str) -> int:
    from weft.actors.resources import parse_size

    return parse_size(v, "--memory")


def _is_size(v: str) -> bool:
    from weft.actors.model import SpecError
    from weft.actors.resources import CHUNK

    try:
        return _size(v) >= CHUNK
    except SpecError:
        return False


def _is_addr(v: str) -> bool:
    from .httpaddr import is_addr

    return is_addr(v)


def _positive_finite(v: float) -> bool:
    return math.isfinite(v) and v > 0


@dataclass(frozen=True)
class Setting:
    name: str  # the Python name: the CLI parameter and the launcher's JSON key
    flag: str
    default: Any
    type: type  # str, int, float, bool (a flag without value) or Path
    help: str
    metavar: str = ""
    # "node": a NodeConfig field; "role": a keyword of the role class.
    target: str = "node"
    key: str = ""  # the field or keyword it sets (default: name)
    check: Callable[[Any], bool] | None = None
    expect: str = ""  # a valid value, said to the user when `check` fails
    convert: Callable[[Any], Any] | None = None  # the value as the field or keyword takes it
    envvar: str | None = None
    aliases: tuple[str, ...] = ()  # more flags for the same setting (e.g. --cpus for --slots)

    @property
    def field(self) -> str:
        return self.key or self.name

    def validate(self, value: Any) -> Any:
        """`value` parsed to the setting's type and checked; SettingError if it is not valid."""
        if value is None:
            return None
        if self.type is bool:
            if not isinstance(value, bool):
                raise SettingError(f"invalid {self.flag} {value!r}: expected true or false")
            return value
        shown = repr(value) if isinstance(value, str) else str(value)
        try:
            value = self.type(value)
        except (TypeError, ValueError):
            raise SettingError(f"invalid {self.flag} {shown}: expected {self.expect or self.type.__name__}") from None
        if self.check is not None and not self.check(value):
            raise SettingError(f"invalid {self.flag} {shown}: expected {self.expect}")
        return value


_ENDPOINT = dict(metavar="ENDPOINT", check=is_endpoint, expect="tcp://HOST:PORT or ipc://PATH")

LISTEN = Setting("listen", "--listen", DEFAULT_LISTEN, str,
                 "Endpoint to serve on (port 0: ephemeral, printed at start).", metavar="ENDPOINT",
                 check=is_listenable, expect="tcp://HOST:PORT or ipc://PATH")
COMMON: tuple[Setting, ...] = (
    LISTEN,
    Setting("advertise", "--advertise", None, str,
            "Endpoint other hosts reach this node at, announced in beacons and hello (default: the listen "
            "address if it names a host, else this host's address on the route to the coordinator or beacon "
            "address).", **_ENDPOINT),
    Setting("data_dir", "--data-dir", None, Path,
            "Where this node keeps its state (default $WEFT_DATA_DIR/<role> or .weft/<role>); one node per "
            "directory: it is locked while the node runs.", metavar="DIR"),
    Setting("node_id", "--node-id", None, str, "Stable node id (default: random per start).", metavar="ID",
            check=lambda v: bool(v) and not v.isspace() and len(v) <= 200, expect="a non-empty name"),
    Setting("no_beacon", "--no-beacon", False, bool, "Do not announce by UDP beacon.",
            key="beacon", convert=lambda v: not v),
    Setting("beacon_addr", "--beacon-addr", DEFAULT_BEACON_ADDR, str,
            "Broadcast address for beacons (the LAN's broadcast address across hosts).", metavar="ADDRESS",
            envvar="WEFT_BEACON_ADDR", check=lambda v: bool(v.strip()), expect="an IPv4 broadcast address"),
    Setting("beacon_port", "--beacon-port", DEFAULT_BEACON_PORT, int, "UDP port for beacons.", metavar="PORT",
            envvar="WEFT_BEACON_PORT", check=lambda v: 0 < v < 65536, expect="1..65535"),
    Setting("cluster", "--cluster", "default", str, "Cluster name: beacons of other clusters are ignored.",
            metavar="NAME", envvar="WEFT_CLUSTER", check=lambda v: bool(v), expect="a non-empty name"),
    Setting("security", "--security", "none", str,
            "curve: every connection encrypted and admitted only with a key on the allow-list (--keys); "
            "none: in the clear.", metavar="MODE", key="security_mode",
            check=lambda v: v in ("none", "curve"), expect="none or curve"),
    Setting("keys", "--keys", None, Path,
            "Keys directory of a secure cluster: cluster.secret, allow (the allow-list), node.secret.",
            metavar="DIR", key="keys_dir"),
    Setting("key", "--key", None, Path, "This daemon's own key file (default KEYS/node.secret).",
            metavar="FILE", key="key_file"),
    Setting("metrics", "--metrics", None, str,
            "Serve Prometheus metrics at http://ADDR/metrics (HOST:PORT; read at scrape time, nothing "
            "counted per message; docs/operations.md lists them).", metavar="ADDR",
            check=lambda v: _is_addr(v), expect="HOST:PORT"),
    Setting("insecure", "--insecure", False, bool,
            "Listen on a non-loopback address without --security curve (refused otherwise: anyone who reaches "
            "the port could run commands as this user), and serve the dashboard beyond loopback without HTTPS; "
            "warned at every start."),
)
STATIC_COORDINATOR = Setting(
    "coordinator", "--coordinator", None, str,
    "Announce to this coordinator endpoint by posted hello instead of beacons.", **_ENDPOINT)

ROLE_SETTINGS: dict[str, tuple[Setting, ...]] = {
    "coordinator": (
        # 2 s: a paused or stopped node is noticed (and placed around) within
        # about the latency bound compute uses, not after a 5 s wait.
        Setting("heartbeat_timeout", "--heartbeat-timeout", 2.0, float, "Seconds of silence before a node is lost.",
                metavar="SECONDS", target="role", check=lambda v: math.isfinite(v) and v > 0.5,
                expect="more than 0.5 seconds"),
        Setting("replicas", "--replicas", 1, int, "Storage nodes each output is written to.", metavar="N",
                target="role", check=lambda v: v >= 1, expect="at least 1"),
        Setting("storage_grace", "--storage-grace", 30.0, float,
                "Seconds to wait for a lost storage node before remaking its objects.", metavar="SECONDS",
                target="role", check=lambda v: math.isfinite(v) and v >= 0, expect="seconds >= 0"),
        Setting("prefetch", "--prefetch", 8, int, "Tasks per slot sent ahead to a node when the queue is deep "
                "(more, up to 5 ms of work and 32, for a node of sub-millisecond tasks; 0: none).", metavar="N", target="role", check=lambda v: v >= 0, expect="0 or more"),
        Setting("follow_ahead", "--follow-ahead", 4, int,
                "Dependents per slot started ahead on the node making their last input (a chain's links: twice "
                "as many; 0: none).", metavar="N",
                target="role", check=lambda v: v >= 0, expect="0 or more"),
        Setting("reserve_after", "--reserve-after", 30.0, float,
                "Seconds a job may wait for room (a big one, behind a stream of small ones) before a compute "
                "node is kept free for it.", metavar="SECONDS", target="role",
                check=lambda v: math.isfinite(v) and v >= 0, expect="seconds >= 0"),
        Setting("steal_after", "--steal-after", 0.5, float,
                "Seconds a compute node with free CPUs waits (times 1 + its load) before taking over jobs queued "
                "on another node (0: never).", metavar="SECONDS", target="role",
                check=lambda v: math.isfinite(v) and v >= 0, expect="seconds >= 0"),
        Setting("max_user_priority", "--max-user-priority", 0, int,
                "Highest priority a `user` key may give its jobs on a secure cluster (admins: any).",
                metavar="N", target="role"),
        Setting("repair_copies", "--repair-copies", 32, int,
                "Repair copies (storage to storage) in flight at once, in all.", metavar="N",
                target="role", check=lambda v: v >= 1, expect="at least 1"),
        Setting("repair_per_node", "--repair-per-node", 8, int,
                "Repair copies in flight to, and from, any one storage node.", metavar="N",
                target="role", check=lambda v: v >= 1, expect="at least 1"),
        Setting("retry_backoff", "--retry-backoff", 2.0, float,
                "Seconds a job waits before its third try after soft failures, doubling for each next one "
                "(the second try is at once).", metavar="SECONDS", target="role",
                check=lambda v: math.isfinite(v) and v >= 0, expect="seconds >= 0"),
        Setting("retry_backoff_max", "--retry-backoff-max", 60.0, float,
                "Longest wait before a retry after soft failures.", metavar="SECONDS", target="role",
                check=lambda v: math.isfinite(v) and v >= 0, expect="seconds >= 0"),
        Setting("max_soft_retries", "--max-soft-retries", 5, int,
                "Times a job is retried after infrastructure failures (node lost, storage unreachable) before "
                "it fails; a job's own failures use its --retries instead.", metavar="N", target="role",
                check=lambda v: 0 <= v <= 1000, expect="0 to 1000"),
        Setting("max_queue", "--max-queue", 1_000_000, int,
                "Unfinished jobs past which a submit is answered busy (with a hint of when to retry).",
                metavar="N", target="role", check=lambda v: v >= 1, expect="at least 1"),
        Setting("keep", "--keep", "7d", str,
                "How long finished jobs are kept before they, their outputs and logs are forgotten "
                "(garbage collection; 90s, 30m, 2h, 7d).", metavar="DURATION", target="role",
                check=_is_duration, expect="a duration (90, 90s, 30m, 2h, 7d)", convert=_duration),
        Setting("http", "--http", None, str,
                "Serve the read-only web dashboard and its JSON API (/api/) at http://ADDR (HOST:PORT); an "
                "address beyond loopback needs --http-tokens.", metavar="ADDR",
                check=lambda v: _is_addr(v), expect="HOST:PORT"),
        Setting("http_tokens", "--http-tokens", None, Path,
                "File of dashboard tokens (`weft keys token` writes them): a browser or script presents one "
                "as a bearer token or a cookie; without it, only loopback addresses are served.",
                metavar="FILE"),
        Setting("http_cert", "--http-cert", None, Path,
                "Certificate (PEM) to serve the dashboard over HTTPS, with --http-key; beyond loopback the "
                "dashboard needs it (or --insecure).", metavar="FILE"),
        Setting("http_key", "--http-key", None, Path, "Private key (PEM) of --http-cert.", metavar="FILE"),
        Setting("time_windows", "--time-windows", None, str,
                "Default time windows for jobs that give none, in the coordinator's timezone "
                "(e.g. 'allow Mon-Fri 18:00-08:00; deny Sat-Sun').", metavar="RULES", target="role",
                check=_is_windows, expect="'allow|deny RULE; ...' (RULE: Mon-Fri, 18:00-08:00 or both)",
                convert=_windows),
    ),
    "storage": (
        STATIC_COORDINATOR,
        Setting("page_cache_mb", "--page-cache-mb", 512, int,
                "Newest object content (MiB) left in the OS page cache for readers; older content is dropped "
                "from it.", metavar="MIB", target="role", key="page_cache", check=lambda v: v >= 0,
                expect="MiB >= 0", convert=lambda v: v << 20),
        Setting("max_writes", "--max-writes", 128, int,
                "Object writes (puts, finishes) waiting for their flush at once; past it writers are told "
                "busy and retry.", metavar="N", target="role", check=lambda v: v >= 1, expect="at least 1"),
    ),
    "compute": (
        STATIC_COORDINATOR,
        Setting("slots", "--slots", None, int,
                "CPUs this node offers to jobs (--cpus is the same; a job takes its --cpus of them; default: "
                "the cores this process may use, or its cgroup CPU quota).", metavar="N", target="role", check=lambda v: v >= 1,
                expect="at least 1", aliases=("--cpus",)),
        Setting("memory", "--memory", None, str,
                "Memory this node offers to jobs, e.g. 512M or 16G (default: the machine's, or its cgroup "
                "limit if lower); accounted in 32 MiB chunks.", metavar="SIZE", target="role",
                check=_is_size, expect="a size such as 512M or 16G (at least 32M)", convert=_size),
        Setting("host_name", "--host-name", None, str,
                "Host name this node reports for --host placement (default: the machine's host name).",
                metavar="NAME", target="role", check=lambda v: bool(v.strip()) and len(v) <= 253,
                expect="a non-empty name"),
        Setting("min_copies", "--min-copies", 0, int,
                "Replicas whose finish a write of an output waits for (0: all it was placed on); the rest finish "
                "in the background. A replica slower than its latency bound is dropped either way.", metavar="N",
                target="role", check=lambda v: v >= 0, expect="0 (all replicas) or more"),
        Setting("slow_after", "--slow-after", 1.5, float,
                "Least latency bound (seconds) of a storage node: a read moves to the next copy, and a write drops "
                "a replica, when it takes longer than this and 8x its usual latency.", metavar="SECONDS",
                target="role", check=lambda v: math.isfinite(v) and v >= 0.05, expect="at least 0.05 seconds"),
        Setting("value_cache_mb", "--value-cache-mb", None, int,
                "Callable outputs (MiB) this node keeps in memory once stored, so consumers here and on other "
                "compute nodes take them without a storage read; past it, values go through storage only (0: "
                "none; default 512, or an eighth of the memory it offers if less).",
                metavar="MIB", target="role", key="value_cache", check=lambda v: v >= 0, expect="MiB >= 0",
                convert=lambda v: v << 20),
        Setting("max_queued", "--max-queued", 10_000, int,
                "Unfinished tasks the node holds (running and queued) before it answers starts busy.",
                metavar="N", target="role", check=lambda v: v >= 1, expect="at least 1"),
        # Job isolation (actors/compute/isolation.py, docs/security.md).
        Setting("isolation", "--isolation", "auto", str,
                "namespace: each command job in a mount namespace (bubblewrap) that shows it only the system, its "
                "task directory and --share paths, and each callable in a fresh fork of a clean worker; none: jobs "
                "see what the node's user sees; auto: namespace with --security curve, else none.", metavar="MODE",
                target="role", check=lambda v: v in ("auto", "none", "namespace"), expect="auto, none or namespace"),
        Setting("run_as", "--run-as", None, str,
                "Run command jobs as this unprivileged user (the node must run as root; the task directory is "
                "handed to it).", metavar="USER", target="role", check=lambda v: bool(v.strip()),
                expect="a user name"),
        Setting("share", "--share", None, str,
                "Directories a sandboxed command job may also see and write, e.g. a shared filesystem "
                "(absolute paths, several separated by ':').", metavar="PATHS", target="role",
                check=lambda v: all(p.startswith("/") for p in v.split(":") if p) and bool(v.strip(":")),
                expect="absolute paths separated by ':'"),
    ),
}


def settings(role: str) -> tuple[Setting, ...]:
    """Every setting of `role`, in the order `--help` lists them."""
    common = COMMON
    if role == "coordinator":
        # The coordinator is the one endpoint people type: a fixed default port.
        common = (replace(LISTEN, default=DEFAULT_COORDINATOR, help="Endpoint to serve on."), *COMMON[1:])
    return (*common, *ROLE_SETTINGS[role])


def by_flag(role: str) -> dict[str, Setting]:
    return {f: s for s in settings(role) for f in (s.flag, *s.aliases)}


def resolve(role: str, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(NodeConfig fields, role keywords) from setting values by name; defaults fill the rest.

    Raises SettingError naming the first invalid value or unknown name.
    """
    if role not in ROLE_SETTINGS:
        raise SettingError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    known = {s.name: s for s in settings(role)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise SettingError(f"{role} has no setting {unknown[0]!r}")
    node: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for name, s in known.items():
        value = s.validate(values.get(name, s.default))
        if value is None and s.target == "role":
            continue  # the role class's own default
        if s.convert is not None and value is not None:
            value = s.convert(value)
        (node if s.target == "node" else options)[s.field] = value
    return node, options


def to_args(role: str, values: dict[str, Any]) -> list[str]:
    """The command-line flags of `weft <role>` for setting values by name (None: left out)."""
    known = {s.name: s for s in settings(role)}
    args: list[str] = []
    for name, value in values.items():
        s = known[name]
        if value is None or (s.type is bool and not value):
            continue
        args += [s.flag] if s.type is bool else [s.flag, str(value)]
    return args


def from_args(role: str, args: list[str]) -> dict[str, Any]:
    """Setting values by name from `weft <role>`'s flags (`--flag VALUE` only); SettingError if unknown."""
    flags = by_flag(role)
    values: dict[str, Any] = {}
    rest = list(args)
    while rest:
        flag = rest.pop(0)
        s = flags.get(flag)
        if s is None:
            raise SettingError(f"{role} has no option {flag}")
        if s.type is bool:
            values[s.name] = True
            continue
        if not rest:
            raise SettingError(f"option {flag} needs a value")
        values[s.name] = rest.pop(0)
    return values
