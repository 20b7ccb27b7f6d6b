"""What a callable's run in the worker pool can end with (pool.py): the
function raised, it could not be found, or its worker process died."""

from __future__ import annotations

import signal

from weft.protocol.enums import ErrorCode


class CallableError(Exception):
    """The function raised. `message` is one line ("ValueError: bad"); `traceback` is the
    worker's full traceback text."""

    code = ErrorCode.CALLABLE_FAILED

    def __init__(self, message: str, traceback: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.traceback = traceback

    def __reduce__(self):
        return (type(self), (self.message, self.traceback))


class CallableNotFound(CallableError):
    """The callable's module could not be imported, or has no such function."""

    code = ErrorCode.CALLABLE_NOT_FOUND


class WorkerLost(Exception):
    """The worker process died during the call (crash, os._exit, killed); it is replaced."""

    code = ErrorCode.WORKER_LOST


def describe_exit(rc: int | None) -> str:
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exited with status {rc}"
