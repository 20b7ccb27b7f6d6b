"""The callable job of the chaos soak, imported by the compute nodes' workers.

The soak cluster puts this folder on its daemons' PYTHONPATH, so the module
is `soak_jobs` there. It prints what the soak's command jobs print (see
tests/faults/dag.py), computed here on its own: the test checks the bytes
against `expected_output`, so a worker or storage path that mangles a
callable's result cannot hide behind a shared helper.
"""

from __future__ import annotations

import hashlib
import os
import time


def soak_job(tag: str, runlog: str, size: str, sleep: str = "", **refs: bytes) -> bytes:
    # One O_APPEND write per execution, before any work: executions are
    # counted even when the node dies mid-job, like the command jobs' `echo >>`.
    fd = os.open(runlog, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{tag} {time.time():.9f}\n".encode())
    finally:
        os.close(fd)
    if sleep:
        time.sleep(float(sleep))
    # Inputs in name order (d0 < d1 < d2): the order `cat $WEFT_INPUTS/*` reads them.
    data = f"{tag}\n".encode() + b"".join(bytes(refs[k]) for k in sorted(refs))
    line = (hashlib.sha256(data).hexdigest()[:16] + "\n").encode()
    n = int(size)
    if n == 0:
        return line
    return (line * (n // len(line) + 1))[:n]
