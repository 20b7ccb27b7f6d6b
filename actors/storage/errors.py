"""Errors of the object store: each carries the machine-readable `code` the
storage node puts on the wire, and the object's name where there is one."""

from __future__ import annotations

from weft.protocol.enums import ErrorCode


class StoreError(Exception):
    """Base of store errors; `code` is the machine-readable reason for the wire."""

    code: str = "store-error"

    def __init__(self, message: str, *, name: str | None = None, code: str | None = None):
        super().__init__(message)
        self.name = name
        if code is not None:
            self.code = code


class ObjectExists(StoreError):
    code = ErrorCode.EXISTS


class ObjectMissing(StoreError):
    code = ErrorCode.MISSING


class ObjectImmutable(StoreError):
    code = ErrorCode.IMMUTABLE


class Fenced(StoreError):
    code = ErrorCode.FENCED


class NotReadable(StoreError):
    """The object cannot be read here: a bad range, or its delegation chain
    leaves this store (`target` then names where to look)."""

    code = ErrorCode.NOT_READABLE

    def __init__(self, message: str, *, name: str | None = None, target: str | None = None):
        super().__init__(message, name=name)
        self.target = target


class DelegationCycle(StoreError):
    code = ErrorCode.DELEGATION_CYCLE


class OutOfSpace(StoreError):
    code = ErrorCode.NO_SPACE
