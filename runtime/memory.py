"""How weft's processes give memory back to the OS: late.

glibc serves large allocations (past a threshold that starts at 128 KiB) with
mmap and returns them on free, and trims the heap top past another; a
process that moves a large value through Python (a worker's 10 MiB result,
ZeroMQ's 1 MiB frames) then faults in and zeroes fresh pages for each one.
Measured on the 2-core VM of docs/performance.md, whose free memory goes back
to its host: making and dropping a 10 MiB bytes object 100 times cost 2.3 s
of kernel time with the defaults, 0.02 s when the freed memory stays in the
process for reuse. Every daemon and worker process calls `keep_freed_memory`
first thing. WEFT_MALLOC_KEEP=0 leaves the defaults.
"""

from __future__ import annotations

import os

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap, so their pages are reused.
MMAP_THRESHOLD = 64 << 20
# Free memory at the top of a heap beyond this goes back to the OS.
TRIM_THRESHOLD = 256 << 20


# Set in this process, or in the one it was forked from (glibc's settings are
# copied by fork): the zygote sets them in its image, so its daemons and their
# forked workers skip the ~0.35 ms of ctypes each call cost (localcluster/zygote.py).
_kept = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds; False where that is not possible
    (another C library) or turned off."""
    global _kept
    if _kept:
        return True
    if os.environ.get("WEFT_MALLOC_KEEP", "1") == "0":
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, ImportError):
        return False
    # Both or neither: setting one already turns off glibc's own adjustment.
    _kept = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _kept
