"""Who the local user is, as a client in the clear tells the coordinator
(shown as its jobs' owner; informational only: docs/security.md)."""

from __future__ import annotations

import getpass
import re

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@-]{0,63}")


def local_user() -> str | None:
    """The login name, or None where there is none usable (no passwd entry, odd characters)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        return None
    return name if _NAME.fullmatch(name) else None
