"""Field readers for `from_wire`: each check is one type test on the hot
path, and each failure is a one-line `bad-request` naming op and field."""

from __future__ import annotations

from typing import Any, NoReturn

from weft.actors.model import SpecError, check_job_id, split_object_name
from weft.actors.model import _valid_job_id as valid_job_id  # noqa: F401  (cached: the fast path of a name check)
from weft.actors.model import _valid_output as valid_output  # noqa: F401
from weft.bus.errors import BusError

from .enums import ErrorCode

# SQLite stores signed 64-bit integers: a larger token or size could be
# accepted in memory and then fail every later group commit.
INT_MAX = (1 << 63) - 1


class BadRequest(BusError):
    """A request field is malformed; the message names the op and the field."""

    code = ErrorCode.BAD_REQUEST


def bad(op: str, field: str, why: str) -> NoReturn:
    raise BadRequest(f"{op}: {field!r} {why}")


def body_map(op: str, body: Any, *, optional: bool = False) -> dict:
    """The request's map; with `optional`, a missing (nil) body is an empty one."""
    if type(body) is not dict:
        if body is None and optional:
            return {}
        raise BadRequest(f"{op}: the body must be a map, got {type(body).__name__}")
    return body


def int_field(op: str, body: dict, key: str, default: int | None = 0, *, minimum: int = 0,
              maximum: int = INT_MAX, nullable: bool = False) -> Any:
    v = body.get(key, default)
    if v is None and (nullable or key not in body):
        return None
    if type(v) is not int or not minimum <= v <= maximum:
        bad(op, key, f"must be an integer in [{minimum}, 2**63), got {v!r}")
    return v


def seconds_field(op: str, body: dict, key: str, default: float, maximum: float) -> float:
    v = body.get(key, default)
    if type(v) not in (int, float) or not 0 <= v <= maximum:
        bad(op, key, f"must be 0..{maximum:g} seconds, got {v!r}")
    return v


def str_field(op: str, body: dict, key: str, default: str | None = None) -> Any:
    v = body.get(key, default)
    if type(v) is not str:
        if v is None and default is None and key not in body:
            bad(op, key, "is required")
        bad(op, key, f"must be a string, got {type(v).__name__}")
    return v


def opt_str(op: str, body: dict, key: str) -> str | None:
    v = body.get(key)
    if v is not None and type(v) is not str:
        bad(op, key, f"must be a string, got {type(v).__name__}")
    return v


def flag(body: dict, key: str) -> bool:
    return body.get(key) is True


def object_field(op: str, body: dict, key: str = "name") -> str:
    name = body.get(key)
    try:
        split_object_name(name)
    except SpecError as e:
        bad(op, key, f"is not an object name: {e}")
    return name


def job_field(op: str, body: dict, key: str = "job") -> str:
    job = body.get(key)
    try:
        return check_job_id(job)
    except SpecError as e:
        bad(op, key, f"is not a job id: {e}")


def str_list(op: str, body: dict, key: str, *, what: str = "strings", nonempty: bool = False) -> list[str]:
    v = body.get(key)
    if type(v) is not list or (nonempty and not v) or not all(type(x) is str for x in v):
        bad(op, key, f"must be a {'non-empty ' if nonempty else ''}list of {what}")
    return v


def epoch_field(op: str, body: dict) -> int | None:
    """The coordinator epoch a fenced call carries (None: a user's direct call)."""
    v = body.get("epoch")
    if v is not None and (type(v) is not int or v < 0):
        bad(op, "epoch", f"must be a non-negative integer, got {v!r}")
    return v


def put_epoch(d: dict, epoch: int | None) -> dict:
    if epoch is not None:
        d["epoch"] = epoch
    return d


def enum_field(op: str, body: dict, key: str, kind: type, default: Any = None) -> Any:
    """A str-enum member by value: one dict lookup, no exception machinery."""
    v = body.get(key, default)
    if v is None:
        return None
    m = kind._value2member_map_.get(v) if type(v) is str else None
    if m is None:
        bad(op, key, f"must be one of {', '.join(kind._value2member_map_)}, got {v!r}")
    return m
