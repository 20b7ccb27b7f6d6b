"""The coordinator's cyclic garbage collector, run less often.

The coordinator makes almost no cyclic garbage: its jobs, attempts and
messages are freed by their reference counts. Yet with Python's default
(a young collection every 700 more container allocations than frees) the
collector's passes over what each dispatched job leaves behind (its attempt,
its outputs' records, the journal's staged rows) were ~7 us of the ~50 us
of coordinator CPU a job in `python -m weft.bench.dispatch`: per 20,000 jobs
~480 young, ~43 middle and 3 full collections, which collected nothing
(docs/performance.md, "Dispatch, sixth round"). At 50,000: 2-3 young ones,
~1 us a job. What cyclic garbage there is waits longer for its collection:
at most this many containers' worth, a few MB.
"""

from __future__ import annotations

import gc

COLLECT_AFTER = 50_000


def collect_less() -> None:
    """Collect the young generation after COLLECT_AFTER net allocations
    (the older generations' ratios stay Python's)."""
    gc.set_threshold(COLLECT_AFTER, *gc.get_threshold()[1:])
