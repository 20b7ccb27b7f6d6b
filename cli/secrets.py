"""`weft submit --secret NAME=VALUE` / `NAME=@FILE`: secret inputs, given to the
job as environment variables and written nowhere in clear (docs/security.md)."""

from __future__ import annotations

from pathlib import Path

from .common import fail


def parse_secrets(values: list[str]) -> dict[str, str] | None:
    """NAME -> value from the command line; a one-line error (never echoing a value) if one is bad."""
    if not values:
        return None
    from weft.protocol.secrets import MAX_VALUE, check_secret_name

    out: dict[str, str] = {}
    for item in values:
        name, eq, value = item.partition("=")
        if not eq:
            fail(f"invalid --secret {name!r}...: expected NAME=VALUE or NAME=@FILE")
        try:
            check_secret_name(name)
        except ValueError as e:
            fail(f"invalid --secret: {e}")
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                value = path.read_text().rstrip("\n")
            except (OSError, UnicodeDecodeError) as e:
                fail(f"invalid --secret {name}=@{path}: cannot read it as text ({getattr(e, 'strerror', None) or e})")
        if "\0" in value or len(value.encode()) > MAX_VALUE:
            fail(f"invalid --secret {name}: the value must be text without NUL bytes, at most {MAX_VALUE} bytes")
        if name in out:
            fail(f"invalid --secret {name}: given twice")
        out[name] = value
    return out


def file_secrets(path: Path, given: dict[str, str] | None) -> dict[str, str] | None:
    """A flow file's [secrets], with --secret's added (a name in both: --secret's value)."""
    from weft.actors.flowsecrets import flow_secrets
    from weft.actors.model import SpecError

    try:
        found = flow_secrets(path)
    except SpecError as e:
        fail(str(e))
    return {**(found or {}), **(given or {})} or None
