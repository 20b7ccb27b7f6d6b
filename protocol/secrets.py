"""Secret inputs on the wire (docs/security.md, "Secret inputs"): NAME -> value,
given to a command job as environment variables, carried beside the job spec
(never in it: specs are journaled, logged and shown) by `submit` and `start`."""

from __future__ import annotations

import re
from typing import Any

from .fields import bad

# An environment variable name; WEFT_* are the runner's own.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_VALUE = 64 << 10
MAX_SECRETS = 64


def check_secret_name(name: Any) -> str:
    """A usable secret name; ValueError (one line) if not."""
    if type(name) is not str or not _NAME.fullmatch(name) or name.upper().startswith("WEFT_"):
        raise ValueError(f"secret name {name!r}: expected an environment variable name (letters, digits, '_', "
                         "not starting with a digit or WEFT_), at most 64 characters")
    return name


def secrets_field(op: str, b: dict, key: str = "secrets") -> dict[str, str] | None:
    """`b[key]`, a map of secret names to values, checked; None when absent."""
    v = b.get(key)
    if v is None:
        return None
    if type(v) is not dict or len(v) > MAX_SECRETS:
        bad(op, key, f"must be a map of at most {MAX_SECRETS} secret names to values")
    for name, value in v.items():
        try:
            check_secret_name(name)
        except ValueError as e:
            bad(op, key, str(e))
        if type(value) is not str or "\0" in value or len(value) > MAX_VALUE:
            bad(op, key, f"the value of secret {name} must be text without NUL bytes, at most {MAX_VALUE} bytes")
    return v or None
