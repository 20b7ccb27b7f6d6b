"""The bus's typed errors.

Every error that crosses the wire has a machine-readable `code` and a one-line
`message`. A handler raises any exception with a `code` attribute (or a
`BusError`) to answer that code; anything else answers `internal`.
"""

from __future__ import annotations


class BusError(Exception):
    """Base of every error the bus raises."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ProtocolError(BusError):
    """A frame that is not a valid envelope: bad msgpack, wrong types, too big."""

    code = "bad-message"


class RemoteError(BusError):
    """An `error` envelope answered a call: the handler or the actor refused it."""

    def __init__(self, code: str, message: str, *, peer: str = "", op: str = "") -> None:
        super().__init__(message, code=code)
        self.peer = peer
        self.op = op

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"

    def __reduce__(self):  # keep the fields across pickling (e.g. worker processes)
        return (type(self), (self.code, self.message), {"peer": self.peer, "op": self.op})


class Busy(RemoteError):
    """The actor is at its admission limit; retry later."""


class UnknownOp(RemoteError):
    """The actor has no handler for the op."""


class CallTimeout(BusError, TimeoutError):
    """No reply within the deadline."""

    code = "timeout"

    def __init__(self, peer: str, op: str, seconds: float, *, unreachable: bool = False) -> None:
        if unreachable:
            super().__init__(f"call {op!r} to {peer}: no connection within {seconds:g}s (is it running?)")
        else:
            super().__init__(f"call {op!r} to {peer} got no reply within {seconds:g}s")
        self.unreachable = unreachable
        self.peer = peer
        self.op = op
        self.seconds = seconds


class ConnectionLost(CallTimeout):
    """The connection to the peer dropped while the call was in flight: its
    outcome is unknown, as after a timeout, but known at once."""

    code = "connection-lost"

    def __init__(self, peer: str, op: str, seconds: float) -> None:
        super().__init__(peer, op, seconds)
        BusError.__init__(self, f"call {op!r} to {peer}: the connection dropped before the reply")


_BY_CODE: dict[str, type[RemoteError]] = {"busy": Busy, "unknown-op": UnknownOp}


def remote_error(code: str, message: str, *, peer: str = "", op: str = "") -> RemoteError:
    """The typed exception for an error code received from a peer."""
    return _BY_CODE.get(code, RemoteError)(code, message, peer=peer, op=op)
