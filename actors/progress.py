"""Progress a running job reports, and how the compute node reads it back.

A job reports by appending lines `PERCENT MESSAGE` to the file named by
`$WEFT_PROGRESS` (a command: `echo "50 halfway" >> $WEFT_PROGRESS`; a
callable, or any Python the job runs: `weft.progress(50, "halfway")`).
The last line that parses counts. Nothing is sent when a line is written:
the compute node reads the file's tail only when someone asks (`weft status`,
`weft wait`, `Future.progress()`), so reporting costs a job one small write.
"""

from __future__ import annotations

import os

# The tail read for the latest line; a longer line is cut.
_TAIL = 4096
# Past this size weft.progress starts the file again (a loop reporting
# every item must not fill the disk).
_REWRITE_AT = 1 << 20
MESSAGE_MAX = 200
# Set when this process reported: a warm worker clears its (per-worker)
# progress file after such a call, so the next call starts without one.
reported = False


def progress(percent: float, message: str = "") -> None:
    """Report this job's progress: `percent` (0-100) and a short message.

    Does nothing outside a weft job (no `$WEFT_PROGRESS`), so library code
    may call it unconditionally.
    """
    global reported
    path = os.environ.get("WEFT_PROGRESS")
    if not path:
        return
    pct = float(percent)
    if not 0.0 <= pct <= 100.0:  # also NaN
        raise ValueError(f"progress percent {percent!r}: expected a number from 0 to 100")
    text = " ".join(str(message).split())[:MESSAGE_MAX]
    line = f"{pct:g} {text}".rstrip().encode("utf-8", "replace") + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        end = os.lseek(fd, 0, os.SEEK_END)
        if end > _REWRITE_AT:
            os.ftruncate(fd, 0)
        os.write(fd, line)
    finally:
        os.close(fd)
    reported = True


def clear() -> None:
    """Empty this process's progress file (a warm worker between calls)."""
    global reported
    reported = False
    path = os.environ.get("WEFT_PROGRESS")
    if path:
        try:
            os.truncate(path, 0)
        except OSError:
            pass


def parse_line(line: str) -> tuple[float, str] | None:
    """`PERCENT MESSAGE` (percent may end in '%'); None if it does not parse."""
    head, _, message = line.strip().partition(" ")
    try:
        pct = float(head.removesuffix("%"))
    except ValueError:
        return None
    if not 0.0 <= pct <= 100.0:
        return None
    return pct, message.strip()[:MESSAGE_MAX]


def read_latest(path: str | os.PathLike[str]) -> tuple[float, str] | None:
    """The last parsing line of a progress file; None if there is none (or no file)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - _TAIL))
            data = f.read(_TAIL)
    except OSError:
        return None
    lines = data.decode("utf-8", "replace").split("\n")
    if len(lines) > 1:
        # A last piece without its newline may be a line still being written.
        lines = lines[:-1]
    for line in reversed(lines):
        got = parse_line(line)
        if got is not None:
            return got
    return None
