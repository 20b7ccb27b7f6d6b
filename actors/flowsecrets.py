"""A flow file's secret inputs: `[secrets]` NAME = "@FILE" (docs/security.md, "Secret inputs").

A flow file names where each secret is, never its value: the value is the
text of FILE (relative to the flow file, its last newline dropped), read
when the flow is submitted, and it travels as `weft submit --secret` does
(beside the specs, to every job of the file: all must be commands). Only the
file given to `weft submit --file` may have them: an included file or an exit
action's flow is refused, so no secret is dropped without a word.
"""

from __future__ import annotations

from pathlib import Path

from weft.protocol.secrets import MAX_VALUE, check_secret_name

from .flowtemplate import read_flow
from .model import SpecError


def flow_secrets(path: Path) -> dict[str, str] | None:
    """NAME -> value of the flow file's `[secrets]`; a one-line SpecError (never echoing a value) if one is bad."""
    table = read_flow(path).get("secrets")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise SpecError(f'{path}: secrets must be a table of NAME = "@FILE"')
    return read_secrets(table, path.parent, f"{path}: secrets.")


def read_secrets(table: dict[str, object], base: Path, where: str) -> dict[str, str] | None:
    """NAME -> the text of each `@FILE` (relative to `base`); also a unit file's [Secrets] (units.py).
    `where` prefixes each error's key (`FILE: secrets.`)."""
    out: dict[str, str] = {}
    for name, ref in table.items():
        try:
            check_secret_name(name)
        except ValueError as e:
            raise SpecError(f"{where.rstrip('. ')}: {e}") from None
        if not isinstance(ref, str) or len(ref) < 2 or not ref.startswith("@"):
            raise SpecError(f'{where}{name}: expected "@FILE" (a file names where a secret is, never its value)')
        file = Path(ref[1:]).expanduser()
        if not file.is_absolute():
            file = base / file
        try:
            value = file.read_text().rstrip("\n")
        except (OSError, UnicodeDecodeError) as e:
            raise SpecError(f"{where}{name}: cannot read {file} as text "
                            f"({getattr(e, 'strerror', None) or e})") from None
        if "\0" in value or len(value.encode()) > MAX_VALUE:
            raise SpecError(f"{where}{name}: the value must be text without NUL bytes, at most {MAX_VALUE} bytes")
        out[name] = value
    return out or None
