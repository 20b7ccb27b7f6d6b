"""Client of the zygote (`weft.localcluster.zygote`): daemons forked from one
warm interpreter, with the part of Popen's API a cluster uses."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO


class ClusterError(Exception):
    pass


class _Forked:
    """A daemon forked by the zygote, with the part of Popen's API Proc uses."""

    def __init__(self, pid: int, stdout: IO[bytes], zygote: Zygote) -> None:
        self.pid = pid
        self.stdout = stdout
        self.returncode: int | None = None
        self._exited = threading.Event()
        self._zygote = zygote

    def _set_exit(self, rc: int) -> None:
        self.returncode = rc
        self._exited.set()

    def poll(self) -> int | None:
        if self.returncode is None and self._zygote.gone:
            # Nobody is left to report the exit: look for the process itself.
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self._set_exit(-1)
            except PermissionError:
                pass
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            remaining = 0.5 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise subprocess.TimeoutExpired([f"daemon {self.pid}"], timeout or 0)
            # In slices: if the zygote dies meanwhile, nobody sets the event
            # and poll() has to look for the process itself.
            self._exited.wait(min(remaining, 0.05 if self._zygote.gone else 0.5))
        return self.returncode


class Zygote:
    """Client of weft.localcluster.zygote: daemons forked from one warm interpreter.

    Starting five interpreters that each import trio and pyzmq is most of a
    local cluster's start on a small machine; forking them from one image
    that imported everything once is several times cheaper (see
    docs/performance.md, startup).
    """

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "weft.localcluster.zygote", str(theirs.fileno())],
                pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
            )
        theirs.close()
        self.sock = ours
        self.gone = False
        self._send_lock = threading.Lock()
        self._replies: queue.Queue[str] = queue.Queue()
        self._children: dict[int, _Forked] = {}
        self._early_exits: dict[int, int] = {}
        self._registry = threading.Lock()
        threading.Thread(target=self._read, name="weft-zygote", daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                msg = self.sock.recv(4096)
                if not msg:
                    break
                word, _, rest = msg.decode(errors="replace").partition(" ")
                if word == "exit":
                    pid_s, _, rc_s = rest.partition(" ")
                    pid, rc = int(pid_s), int(rc_s)
                    with self._registry:
                        child = self._children.pop(pid, None)
                        if child is None:
                            self._early_exits[pid] = rc
                    if child is not None:
                        child._set_exit(rc)
                else:
                    self._replies.put(msg.decode(errors="replace"))
        except OSError:
            pass
        finally:
            self.gone = True
            self._replies.put("error the zygote exited")

    def spawn(self, config: str, stderr_fd: int, timeout: float = 30.0) -> _Forked:
        if self.gone:
            raise ClusterError("the zygote exited")
        r, w = os.pipe()
        try:
            with self._send_lock:
                socket.send_fds(self.sock, [config.encode()], [w, stderr_fd])
                reply = self._replies.get(timeout=timeout)
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        word, _, rest = reply.partition(" ")
        if word != "started":
            os.close(r)
            raise ClusterError(f"the zygote could not start a daemon: {rest}")
        child = _Forked(int(rest), os.fdopen(r, "rb"), self)
        with self._registry:
            rc = self._early_exits.pop(child.pid, None)
            if rc is None:
                self._children[child.pid] = child
        if rc is not None:
            child._set_exit(rc)
        return child

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def zygote_usable() -> bool:
    return sys.platform == "linux" and hasattr(socket, "send_fds") and hasattr(os, "fork")
