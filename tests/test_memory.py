"""Freed memory stays in weft's processes (bus.memory), in a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Makes and drops two 10 MiB values 20 times, as a worker does with results, and
# counts the page faults after the first round: each one is a fresh page the
# kernel had to find and zero.
PROBE = """
import resource, sys
sys.path.insert(0, {repo!r})
from weft.runtime.memory import keep_freed_memory
kept = keep_freed_memory()
def round():
    v = b"x" * (10 << 20)  # a result
    w = v[1:] + b"y"  # and what a function makes of it
    del v, w

round()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(20):
    round()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES = (10 << 20) // 4096


def run_probe(env: dict[str, str]) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(repo=str(REPO))],
        capture_output=True, text=True, timeout=60, env=env, check=True,
    ).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_values_reuse_pages_instead_of_faulting_new_ones() -> None:
    kept, faults = run_probe(dict(os.environ))
    assert kept
    assert faults < PAGES // 10, f"{faults} page faults for 20 values of 10 MiB"
    # With glibc's defaults every round maps fresh memory: that is what is avoided.
    kept, faults = run_probe({**os.environ, "WEFT_MALLOC_KEEP": "0"})
    assert not kept
    assert faults > 10 * PAGES

# A daemon forked from the zygote (localcluster/zygote.py) inherits the settings
# its image made: the fork makes the same rounds without setting anything itself.
FORKED = """
import os, resource, sys
sys.path.insert(0, {repo!r})
import weft.localcluster.zygote  # the image
from weft.runtime import memory
def round():
    v = b"x" * (10 << 20)
    w = v[1:] + b"y"
    del v, w

pid = os.fork()
if pid == 0:
    round()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(20):
        round()
    print(memory._kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt, fork")
def test_a_daemon_forked_from_the_zygote_keeps_freed_memory_without_setting_it_again() -> None:
    out = subprocess.run([sys.executable, "-c", FORKED.format(repo=str(REPO))], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ), check=True).stdout.split()
    assert out[0] == "True"  # so keep_freed_memory() in the daemon returns at once
    assert int(out[1]) < PAGES // 10, f"{out[1]} page faults for 20 values of 10 MiB"
