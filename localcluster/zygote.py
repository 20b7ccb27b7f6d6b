"""A fork server for local clusters: `python -m weft.localcluster.zygote FD`.

Every daemon spends most of its start importing trio, pyzmq and its role
(~120-220 ms of CPU each, measured); five of them starting at once on two
cores made `weft up` take 0.5-0.9 s. The zygote imports all of it once and
forks each daemon from that warm image, so a daemon costs a fork instead.

It serves one launcher (LocalCluster) over the SOCK_SEQPACKET unix socket FD:

    request   a JSON config for weft.localcluster.launch, with two file descriptors
              (SCM_RIGHTS): the daemon's stdout and its stderr
    replies   "started PID" for each request, in order, and "exit PID RC"
              when a daemon it forked exits (RC as subprocess reports it:
              negative for a signal)

A forked daemon is a session leader, like one started by Popen with
start_new_session, so a launcher's signals reach it alone. The zygote exits
when the launcher closes its end; daemons still running then go on as
orphans, as they would after their launcher died.

Nothing here opens a ZeroMQ context or starts a thread before forking:
those would not survive the fork.
"""

from __future__ import annotations

import gc

# No collections while the image loads: it only grows (79 of them, measured),
# and what it builds lives as long as the zygote.
gc.disable()

import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402, F401  (each compute node's descriptor limit: once here, not after each fork)
import select  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
from typing import NoReturn  # noqa: E402

from weft.localcluster import lean  # noqa: E402

# Without the ldconfig subprocess trio's import runs (lean.py).
lean.trim_trio_import()

# The warm image: everything a daemon of any role imports. All of it before
# the first fork: loading a role's modules on demand (after the coordinator
# was forked) let the coordinator start earlier but cost the zygote ~9 ms of
# copy-on-write faults and did not start a cluster sooner (docs/performance.md).
import weft.actors.compute.node  # noqa: E402, F401
import weft.actors.coordinator.node  # noqa: E402, F401
import weft.actors.durations  # noqa: E402, F401  (the coordinator's settings check its --keep)
import weft.actors.storage.node  # noqa: E402, F401
import weft.localcluster.launch  # noqa: E402
import weft.runtime.daemon  # noqa: E402, F401  (what launch.main imports: once here, not in each daemon)
import weft.runtime.datadir  # noqa: E402, F401
import weft.runtime.httpaddr  # noqa: E402, F401
import weft.runtime.log  # noqa: E402, F401
import weft.runtime.memory  # noqa: E402
from weft.runtime.forked import run_and_exit  # noqa: E402

# glibc's memory settings every daemon and worker makes first thing
# (runtime/memory.py): made once here, copied by each fork.
weft.runtime.memory.keep_freed_memory()

# Logging as launch.main sets it up (the daemons share this environment), so
# each daemon finds it done instead of paying for it in copied pages.
try:
    weft.runtime.log.setup(os.environ.get("WEFT_LOG_LEVEL"))
except ValueError:
    pass  # a bad level: each daemon's own setup says so, as before

# The image out of every daemon's collections: a full one would walk its
# ~30,000 objects (8 ms) and write to each one's header, copying every page
# of the image into that daemon (copy-on-write).
gc.freeze()


def _child(config: str, out_fd: int, err_fd: int, close: list[int]) -> NoReturn:
    """In the forked process: become the daemon."""

    def become() -> int:
        os.setsid()
        for fd in close:
            os.close(fd)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        for fd in (devnull, out_fd, err_fd):
            if fd > 2:
                os.close(fd)
        gc.enable()
        import random

        random.seed()  # forks of one image would otherwise share one sequence
        return weft.localcluster.launch.main(["weft.localcluster.launch", config])

    # What a normal exit would run (logging's flush, a profile dump registered
    # by the role), then leave without unwinding the zygote's own interpreter
    # state a second time.
    run_and_exit(become, exit_handlers=True)


def serve(sock: socket.socket) -> None:
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd hears it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher decides when we stop
    children: set[int] = set()
    while True:
        readable, _, _ = select.select([sock, wake_r], [], [])
        if wake_r in readable:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
        while children:
            try:
                pid, raw = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                children.clear()
                break
            if pid == 0:
                break
            children.discard(pid)
            sock.send(f"exit {pid} {os.waitstatus_to_exitcode(raw)}".encode())
        if sock in readable:
            try:
                msg, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, 2)
            except OSError:
                return
            if not msg:
                return  # the launcher is gone
            if len(fds) != 2:
                for fd in fds:
                    os.close(fd)
                sock.send(b"error expected 2 descriptors")
                continue
            config = msg.decode()
            try:
                json.loads(config)
            except ValueError as e:
                for fd in fds:
                    os.close(fd)
                sock.send(f"error bad config: {e}".encode())
                continue
            pid = os.fork()
            if pid == 0:
                _child(config, fds[0], fds[1], [sock.fileno(), wake_r, wake_w])
            for fd in fds:
                os.close(fd)
            children.add(pid)
            sock.send(f"started {pid}".encode())


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        sys.stderr.write("usage: python -m weft.localcluster.zygote SOCKET-FD\n")
        return 2
    sock = socket.socket(fileno=int(argv[1]))
    with sock:
        serve(sock)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
