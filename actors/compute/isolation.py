"""Job isolation: what a job can see and change (docs/security.md, Job isolation).

Command jobs: `Sandbox.command()` turns a command into the argv that runs it
inside a mount namespace (bubblewrap, else util-linux's unshare and a script
of bind mounts) showing only the system (/usr, /bin,
/lib*, /etc, a minimal /dev, /proc, a private /tmp), the task's own
directory and the paths the operator shares (`--share`), and, with
`--run-as USER`, as that user (setpriv, with no_new_privs so no setuid
program gives the privileges back). It is the one call the runner makes
(runner.run_command, just before the spawn); `settle()` after the command
drops output symlinks that lead out of the task directory, which the node,
reading outputs as itself, would otherwise follow to any file it can read.

Callable jobs: with `fresh_callables` each call runs in a process forked from
the worker, which imports callables' modules but never runs a call
(`call_in_child`), so a callable that monkeypatches a module, or changes
globals, cwd or the environment, changes nothing a later job sees.
"""

from __future__ import annotations

import functools
import logging
import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weft.protocol.record import record
from weft.runtime.settings import SettingError

log = logging.getLogger("weft.compute")

MODES = ("auto", "none", "namespace")
# Set in a worker's environment: run each call in a fork of this clean process.
FRESH_ENV = "WEFT_WORKER_FRESH"
# The system a command sees, read-only (a symlink, as /bin on merged-/usr systems, stays one).
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# Hidden inside the sandbox even though /etc is shown: a cluster's keys and configuration.
HIDDEN_PATHS = ("/etc/weft",)


class IsolationError(SettingError):
    """The isolation settings cannot be honoured: one line for the operator."""


@dataclass(frozen=True)
class RunAs:
    name: str
    uid: int
    gid: int


@record(slots=False)
class Sandbox:
    """How this node runs jobs; `tool` None means commands run unsandboxed."""

    mode: str  # "none" or "namespace", as decided
    tool: str | None = None  # "bubblewrap" or "unshare" (the fallback)
    run_as: RunAs | None = None
    shares: tuple[str, ...] = ()
    fresh_callables: bool = False
    note: str = ""  # what was chosen and why: logged at start, shown by `weft nodes`
    _prefix: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "tool": self.tool,
                "run_as": self.run_as.name if self.run_as else None, "shares": list(self.shares),
                "fresh_callables": self.fresh_callables, "note": self.note}

    def log_start(self) -> None:
        if "UNSANDBOXED" in self.note or (self.mode == "namespace" and self.run_as is None and os.geteuid() == 0):
            log.warning("job isolation: %s", self.note)
        else:
            log.info("job isolation: %s", self.note)

    @property
    def active(self) -> bool:
        """Whether commands need the hook at all (the default local cluster: no)."""
        return self.tool is not None or self.run_as is not None

    def command(self, argv: list[str], workdir: Path, cwd: Path, env: dict) -> list[str]:
        """The argv that runs `argv` isolated in task directory `workdir`.

        Raises FileNotFoundError when the command does not exist (the runner's
        command-not-found): inside the sandbox only the wrapper would notice.
        """
        _check_exists(argv[0], cwd, env)
        if self.run_as is not None:
            _hand_over(workdir, self.run_as)
        out = list(self._prefix)
        if self.tool == "bubblewrap":
            out += [*_parents(str(workdir)), "--bind", str(workdir), str(workdir), "--chdir", str(cwd), "--"]
        elif self.tool == "unshare":
            out += [str(workdir), str(cwd), *self.shares, "--"]
        if self.run_as is not None:
            out += ["setpriv", f"--reuid={self.run_as.uid}", f"--regid={self.run_as.gid}", "--clear-groups",
                    "--no-new-privs", "--"]
        return out + argv

    def settle(self, workdir: Path) -> None:
        """After the command: outputs (and the delegation file) that are symlinks
        leading out of the task directory are removed, so they count as not written."""
        root = workdir.resolve()
        outputs = workdir / "outputs"
        try:
            entries = [Path(e.path) for e in os.scandir(outputs) if e.is_symlink()]
        except OSError:
            entries = []
        delegate = workdir / "delegate.json"
        if delegate.is_symlink():
            entries.append(delegate)
        for path in entries:
            target = path.resolve()
            if target != root and root not in target.parents:
                log.warning("%s: removed %s, a symlink out of the task directory (to %s)",
                            workdir.name, path.name, target)
                path.unlink(missing_ok=True)


def choose(mode: str, run_as: str | None = None, share: str | None = None, *, secure: bool = False,
           tools: tuple[str, ...] = ("bubblewrap", "unshare")) -> Sandbox:
    """The sandbox for isolation `mode` ("auto": namespace on a secure cluster,
    else none), made with the first of `tools` that works here. IsolationError
    when a setting cannot be honoured; no working tool is not an error:
    commands then run unsandboxed, with a warning."""
    if mode not in MODES:
        raise IsolationError(f"invalid --isolation {mode!r}: expected {', '.join(MODES)}")
    if mode == "auto":
        mode = "namespace" if secure else "none"
    user = _user(run_as) if run_as else None
    shares = _shares(share)
    if mode == "none":
        note = "none: jobs see what this node's user sees"
        if user is not None:
            note += f"; commands run as {user.name}"
        return Sandbox("none", run_as=user, shares=shares, note=note)
    whys = []
    for tool in tools:
        prefix, why = (_bwrap_prefix if tool == "bubblewrap" else _unshare_prefix)(shares)
        if not why:
            break
        whys.append(why)
    else:
        note = f"namespace wanted but {'; '.join(whys) or 'no tool given'}: commands run UNSANDBOXED"
        return Sandbox("none", run_as=user, shares=shares, fresh_callables=True, note=note)
    note = f"namespace ({tool}): commands see the system, their task directory"
    note += (" and " + ", ".join(shares)) if shares else ""
    if user is not None:
        note += f"; run as {user.name}"
    elif os.geteuid() == 0:
        note += "; as root (root can undo the namespace: give --run-as USER)"
    note += "; callables each in a fresh fork"
    return Sandbox("namespace", tool, user, shares, True, note, prefix)


def _user(name: str) -> RunAs:
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise IsolationError(f"--run-as {name!r}: no such user on this machine") from None
    if pw.pw_uid == 0:
        raise IsolationError(f"--run-as {name!r} is root: give an unprivileged user")
    if os.geteuid() != 0:
        raise IsolationError(f"--run-as {name!r} needs the compute node to run as root")
    return RunAs(name, pw.pw_uid, pw.pw_gid)


def _shares(share: str | None) -> tuple[str, ...]:
    out = []
    for part in (share or "").split(":"):
        if not part:
            continue
        if not os.path.isabs(part) or not os.path.isdir(part):
            raise IsolationError(f"--share {part!r}: not an absolute path of a directory")
        out.append(os.path.realpath(part))
    return tuple(out)


def _bwrap_prefix(shares: tuple[str, ...]) -> tuple[list[str], str]:
    """bubblewrap's arguments up to the task's own, or why it cannot be used here."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return [], "bubblewrap (bwrap) is not installed"
    why = _probe([bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"])
    if why:
        return [], f"bwrap cannot make namespaces here ({why})"
    # No --new-session and no pid namespace: the runner stops a task by its
    # process group, which must stay the command's own.
    out = [bwrap, "--unshare-ipc", "--unshare-uts"]
    for p in SYSTEM_PATHS:
        if os.path.islink(p):
            out += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            out += ["--ro-bind", p, p]
    for p in HIDDEN_PATHS:
        if os.path.isdir(p):
            out += ["--tmpfs", p]
    out += ["--dev", "/dev", "--proc", "/proc", "--perms", "01777", "--tmpfs", "/tmp"]
    for p in shares:
        out += [*_parents(p), "--bind", p, p]
    return out, ""


# The fallback without bubblewrap, for a node running as root: util-linux's
# unshare makes a mount namespace in which this script builds a root of the
# same paths from bind mounts, then chroot. Every step execs, so the command
# keeps the pid the runner knows, its process group and its exit status.
# Arguments: ROOT WORKDIR CWD [SHARE...] -- ARGV...
_UNSHARE_SCRIPT = """set -e
umask 022
r=$1 w=$2 c=$3; shift 3
mount -t tmpfs -o mode=0755 weft-sandbox "$r"
for p in @SYSTEM@; do
  if [ -L "$p" ]; then ln -s "$(readlink "$p")" "$r$p"
  elif [ -d "$p" ]; then mkdir "$r$p"; mount --rbind "$p" "$r$p"; mount -o remount,bind,ro "$r$p"; fi
done
for p in @HIDDEN@; do if [ -d "$p" ]; then mount -t tmpfs -o mode=0755 weft-hidden "$r$p"; fi; done
mkdir "$r/dev" "$r/proc" "$r/tmp"
mount --rbind /dev "$r/dev"
mount -t proc proc "$r/proc"
mount -t tmpfs -o mode=1777 weft-tmp "$r/tmp"
mkdir -p "$r$w"; mount --bind "$w" "$r$w"
while [ "$1" != -- ]; do mkdir -p "$r$1"; mount --bind "$1" "$r$1"; shift; done; shift
exec chroot "$r" /bin/sh -c 'cd "$0" && exec "$@"' "$c" "$@"
""".replace("@SYSTEM@", " ".join(SYSTEM_PATHS)).replace("@HIDDEN@", " ".join(HIDDEN_PATHS))


def _unshare_prefix(shares: tuple[str, ...]) -> tuple[list[str], str]:
    unshare = shutil.which("unshare")
    if unshare is None or shutil.which("mount") is None or shutil.which("chroot") is None:
        return [], "unshare, mount or chroot (util-linux, coreutils) is missing"
    if os.geteuid() != 0:
        return [], "unshare needs the node to run as root"
    root = "/run/weft-sandbox-root"
    try:
        os.makedirs(root, 0o755, exist_ok=True)
    except OSError as e:
        return [], f"cannot make {root} ({e.strerror})"
    prefix = [unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c", _UNSHARE_SCRIPT,
              "weft-sandbox", root]
    why = _probe([*prefix, root, "/", "--", "true"])
    return (prefix, "") if not why else ([], f"unshare cannot make a mount namespace here ({why})")


@functools.lru_cache(maxsize=64)
def _parents(path: str) -> tuple[str, ...]:
    """bwrap arguments that make the directories leading to `path` traversable by
    any user (bwrap would make them 0700), where they are not the system's."""
    out: list[str] = []
    for parent in reversed(Path(path).parents):
        p = str(parent)
        if p in ("/", "/tmp") or any(p == s or p.startswith(s + "/") for s in SYSTEM_PATHS):
            continue
        out += ["--perms", "0755", "--dir", p]
    return tuple(out)


def _probe(argv: list[str]) -> str:
    """Why `argv` (a sandbox running `true`) fails here, '' if it works: e.g. no privilege."""
    try:
        done = subprocess.run(argv, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip().splitlines()
        return err[-1] if err else f"exit status {done.returncode}"
    return ""


def _check_exists(name: str, cwd: Path, env: dict) -> None:
    if "/" in name:
        path = name if os.path.isabs(name) else os.path.join(cwd, name)
        ok = os.path.isfile(path) and os.access(path, os.X_OK)
    else:
        path_var = env.get("PATH")
        ok = shutil.which(name, path=path_var if isinstance(path_var, str) else None) is not None
    if not ok:
        raise FileNotFoundError(name)


def _hand_over(workdir: Path, user: RunAs) -> None:
    """Let `user` write where a command writes, and nothing the node reads by path.

    The task directory stays the node's, sticky and group-writable (the
    command may make delegate.json there but not swap inputs/ or results/
    for symlinks); outputs/ and work/ become the user's; in results/ only
    the files the command appends to (progress, deps) are.
    """
    os.chown(workdir, 0, user.gid)
    os.chmod(workdir, 0o1770)
    for sub in ("outputs", "work"):
        os.chown(workdir / sub, user.uid, user.gid)
        for entry in os.scandir(workdir / sub):  # directory outputs made for it (--output-dir)
            os.chown(entry.path, user.uid, user.gid, follow_symlinks=False)
    for name in ("progress", "deps"):
        path = workdir / "results" / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            os.fchown(fd, user.uid, user.gid)
        finally:
            os.close(fd)


# -- callables -----------------------------------------------------------------------------


def call_in_child(run: Callable[[], None]) -> None:
    """Run `run` (which answers the pool) in a fork of this process and wait for it.

    A child that dies without answering takes this worker down the same way,
    so the pool sees the worker lost as it would without the fork. A SIGTERM
    (a cancelled call) is passed on, giving the call its grace.
    """
    prctl = _prctl()  # looked up once, in the clean process: not a ctypes import per call
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            if prctl is not None:
                prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: gone with the worker, even mid-call
            run()
            code = 0
        finally:
            os._exit(code)
    old = signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGTERM))
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        signal.signal(signal.SIGTERM, old)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        os._exit(code)


@functools.cache
def _prctl() -> Callable[..., int] | None:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux: the worker's own watch still ends the worker
