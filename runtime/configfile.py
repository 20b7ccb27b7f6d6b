"""The configuration file: one TOML file, one section per role.

    [common]        # every daemon (the settings all roles share)
    cluster = "lab"
    [coordinator]
    replicas = 2
    [storage]
    max_writes = 256
    [compute]
    slots = 8
    [client]        # the CLI and Client(): which coordinator to talk to
    coordinator = "tcp://head:5570"

Keys are the settings of weft.runtime.settings (`heartbeat_timeout` or
`heartbeat-timeout`), so the file knows exactly what the flags know and
`weft config template` is generated from the same records. Precedence, high
to low: a command-line flag, a `WEFT_*` variable, the file, the default.
An unknown section or key is an error, not ignored: a typo in a config file
should not silently run the daemon with its default.

Which file: `--config FILE`, else `$WEFT_CONFIG`, else /etc/weft/weft.toml
when it exists, else none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weft.bus.keyfiles import read_toml

from .settings import (
    COMMON,
    DEFAULT_COORDINATOR,
    ROLES,
    STATIC_COORDINATOR,
    Setting,
    SettingError,
    settings,
)

SYSTEM_CONFIG = Path("/etc/weft/weft.toml")
CLIENT_KEYS = {"coordinator": "Coordinator endpoint the CLI and Client() use (tcp://HOST:PORT).",
               "key": "This client's key file on a secure cluster (NAME.secret)."}
SECTIONS = ("common", *ROLES, "client")


@dataclass
class ConfigFile:
    path: Path
    doc: dict[str, dict[str, Any]]

    def section(self, name: str) -> dict[str, Any]:
        return self.doc.get(name, {})


def find(explicit: str | os.PathLike | None = None) -> Path | None:
    """The file to read: `explicit` (must exist), $WEFT_CONFIG (must exist), or the system one if present."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("WEFT_CONFIG")
    if env:
        return Path(env)
    return SYSTEM_CONFIG if SYSTEM_CONFIG.is_file() else None


def load(path: Path) -> ConfigFile:
    """The file parsed and checked; SettingError (one line, naming the file) if it is not usable."""
    doc = read_toml(path, "config file", SettingError)
    for name, body in doc.items():
        if name not in SECTIONS:
            raise SettingError(f"{path}: unknown section [{name}]; sections are {', '.join(SECTIONS)}")
        if not isinstance(body, dict):
            raise SettingError(f"{path}: {name} must be a section ([{name}]), not a value")
    cfg = ConfigFile(path, doc)
    for name in ROLES:
        file_values(cfg, name)  # every key known and every value valid, whichever role reads it
    for key, value in cfg.section("client").items():
        if key not in CLIENT_KEYS:
            raise SettingError(f"{path}: [client] has no setting {key!r}; known: {', '.join(sorted(CLIENT_KEYS))}")
        if not isinstance(value, str):
            raise SettingError(f"{path}: [client] {key} must be a string")
    return cfg


def load_found(explicit: str | os.PathLike | None = None) -> ConfigFile | None:
    path = find(explicit)
    return load(path) if path is not None else None


def _all_settings() -> dict[str, Setting]:
    out: dict[str, Setting] = {}
    for role in ROLES:
        for s in settings(role):
            out.setdefault(s.name, s)
    return out


def _keys(cfg: ConfigFile, section: str, allowed: dict[str, Setting]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in cfg.section(section).items():
        name = key.replace("-", "_")
        if name not in allowed:
            raise SettingError(f"{cfg.path}: [{section}] has no setting {key!r} "
                               f"(`weft config template` lists every one)")
        out[name] = value
    return out


def file_values(cfg: ConfigFile | None, role: str) -> dict[str, Any]:
    """Setting values by name that the file gives `role`, validated: [common] (each role takes the
    keys it has: `coordinator` reaches storage and compute), then [role] over it."""
    if cfg is None:
        return {}
    own = {s.name: s for s in settings(role)}
    merged = {k: v for k, v in _keys(cfg, "common", _all_settings()).items() if k in own}
    merged.update(_keys(cfg, role, own))
    values: dict[str, Any] = {}
    for name, value in merged.items():
        if isinstance(value, (dict, list)):
            raise SettingError(f"{cfg.path}: {name} must be a single value")
        try:
            values[name] = own[name].validate(value)
        except SettingError as e:
            raise SettingError(f"{cfg.path}: {name}: {e}") from None
    return values


def env_vars(role: str, s: Setting) -> list[str]:
    """The variables that set `s` for `role`, first wins: WEFT_<ROLE>_<NAME>, then its own (e.g. WEFT_CLUSTER)."""
    names = [f"WEFT_{role.upper()}_{s.name.upper()}"]
    if s.envvar:
        names.append(s.envvar)
    return names


def env_value(role: str, s: Setting) -> tuple[str, str] | None:
    for var in env_vars(role, s):
        if var in os.environ:
            return var, os.environ[var]
    return None


def effective(role: str, cfg: ConfigFile | None) -> list[tuple[Setting, Any, str]]:
    """Each setting of `role` with its value and where it came from (`env WEFT_X`, `file PATH`, `default`),
    as the daemon would see it with no command-line flags."""
    from_file = file_values(cfg, role)
    out = []
    for s in settings(role):
        env = env_value(role, s)
        if env is not None:
            var, raw = env
            value = (raw.lower() in ("1", "true", "yes", "on")) if s.type is bool else raw
            try:
                out.append((s, s.validate(value), f"env {var}"))
            except SettingError as e:
                raise SettingError(f"${var}: {e}") from None
        elif s.name in from_file:
            out.append((s, from_file[s.name], f"file {cfg.path}"))  # type: ignore[union-attr]
        else:
            out.append((s, s.default, "default"))
    return out


def given(role: str, cfg: ConfigFile | None) -> dict[str, Any]:
    """Setting values by name that the environment or the file give `role` (the environment wins):
    what a launcher that starts daemons itself (`weft up`) passes on as flags."""
    return {s.name: v for s, v, src in effective(role, cfg) if src != "default"}


def client_coordinator(cfg: ConfigFile | None) -> str | None:
    return cfg.section("client").get("coordinator") if cfg is not None else None


def default_coordinator() -> str:
    """The coordinator a client talks to when not told: $WEFT_COORDINATOR (also how a job reaches
    its own cluster), else [client] coordinator of the configuration file, else the default.
    SettingError if the configuration file is not usable."""
    return os.environ.get("WEFT_COORDINATOR") or client_coordinator(load_found()) or DEFAULT_COORDINATOR


def client_security(key: str | os.PathLike | None = None) -> Any:
    """A client's CurveZMQ setup from `key`, else a job's $WEFT_JOB_CREDENTIAL, else $WEFT_KEY, else [client]
    key; None: in the clear.
    SettingError (one line) if the key file is not usable."""
    # Inside a job on a secure cluster: the credential its compute node gave it (docs/security.md;
    # the name is bus.curve.JOB_CREDENTIAL_ENV, not imported here: zmq loads only when a key is used).
    cred = None if key else os.environ.get("WEFT_JOB_CREDENTIAL")
    path = None if cred else (key or os.environ.get("WEFT_KEY")
                              or (load_found() or ConfigFile(Path(), {})).section("client").get("key"))
    if not cred and not path:
        return None
    from weft.bus.curve import KeyFileError, job_client, load_client

    if cred:
        try:
            return job_client(cred)
        except KeyFileError as e:
            raise SettingError(str(e)) from None
    try:
        return load_client(Path(path))
    except KeyFileError as e:
        raise SettingError(str(e)) from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def template() -> str:
    """A commented file with every setting at its default, from the settings records."""
    lines = ["# weft configuration: every setting at its default; uncomment to change.",
             "# Precedence: command-line flag > WEFT_* variable > this file > default.", "",
             "[common]  # every daemon that has the setting"]
    common = [*COMMON, STATIC_COORDINATOR]
    for s in common:
        lines += _entry(s)
    shared = {s.name for s in common}
    for role in ROLES:
        lines += ["", f"[{role}]"]
        for s in settings(role):
            if s.name not in shared or (role == "coordinator" and s.name == "listen"):
                lines += _entry(s)
    lines += ["", "[client]  # the CLI and Client()"]
    for key, text in CLIENT_KEYS.items():
        lines += [f"# {text}", f'# {key} = "{"tcp://127.0.0.1:5570" if key == "coordinator" else "admin.secret"}"']
    return "\n".join(lines) + "\n"


def _entry(s: Setting) -> list[str]:
    value = "" if s.default is None else " " + _toml_value(s.default)
    return [f"# {' '.join(s.help.split())}", f"# {s.name} ={value}"]
