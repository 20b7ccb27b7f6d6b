"""A random DAG of command jobs whose every output can be checked byte for byte.

Job `i` of seed `s` reads 0-3 earlier jobs' stdout as inputs `d0`, `d1`, ...
and prints a hash of its own tag and its inputs::

    h=$( (echo s-i; cat $WEFT_INPUTS/* 2>/dev/null) | sha256sum | cut -c1-16)

Most jobs print `h` and a newline (17 bytes, an inline object on storage);
some print `h\\n` repeated to 100 KB (a file object, one `put`) and a few to
1.5 MiB (streamed: `populate` chunks, then `finish`), so every write path of
storage is on the line when a role dies. Python computes every expected
output the same way: `cat $WEFT_INPUTS/*` reads the inputs in glob order,
which is the sorted order of their names (d0 < d1 < d2, in any locale), and
an input file holds the producer's stdout bytes exactly.

A small random sleep in most jobs spreads them out so a kill lands mid-run.
Everything is a function of (seed, n): the same seed gives the same jobs, the
same job ids and the same expected bytes.
"""

from __future__ import annotations

import hashlib
import random
import shlex
from dataclasses import dataclass, field

from weft.actors.model import JobSpec

SMALL, MEDIUM, LARGE = 0, 100_000, 1_572_864  # output sizes: 17 bytes, 100 KB, 1.5 MiB


@dataclass
class Dag:
    seed: int
    specs: list[JobSpec] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    deps: list[list[int]] = field(default_factory=list)
    expected: list[bytes] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.specs)

    def output(self, i: int) -> str:
        return f"{self.ids[i]}/stdout"

    @property
    def index(self) -> dict[str, int]:
        return {jid: i for i, jid in enumerate(self.ids)}


def _script(tag: str, size: int, sleep: str, runlog: str | None = None) -> str:
    # The wall-clock start of each execution goes with its tag: the kill tests
    # tell reruns the fault caused from needless ones by when they began.
    pre = f"echo {tag} $(date +%s.%N) >> {shlex.quote(runlog)}; " if runlog else ""
    pre += f"sleep {sleep}; " if sleep else ""
    hashed = f"(echo {tag}; cat $WEFT_INPUTS/* 2>/dev/null) | sha256sum | cut -c1-16"
    if size == SMALL:
        return pre + hashed
    return pre + f"h=$( {hashed} ); yes $h | head -c {size}"


def expected_output(tag: str, inputs: list[bytes], size: int) -> bytes:
    h = hashlib.sha256(f"{tag}\n".encode() + b"".join(inputs)).hexdigest()[:16]
    line = (h + "\n").encode()
    if size == SMALL:
        return line
    return (line * (size // len(line) + 1))[:size]


def make_dag(seed: int, n: int, *, max_sleep: float = 0.1, big: bool = True, runlog: str | None = None) -> Dag:
    """`n` jobs; job i depends on 0-3 of the jobs before it.

    `big`: about 8% of the jobs print 100 KB and 2% 1.5 MiB (never more
    than two 1.5 MiB inputs to one job, so no job reads much).
    `runlog`: every execution of a job appends a line "tag start-time" (Unix
    seconds) to this file first, so executions can be counted whatever
    happened to the coordinator's counters (the path is part of the
    commands, hence of the job ids); `read_runlog` reads it.
    """
    rng = random.Random(seed)
    dag = Dag(seed)
    sizes: list[int] = []
    for i in range(n):
        k = rng.randint(0, 3)
        deps = sorted(rng.sample(range(i), min(i, k)))
        while sum(sizes[d] == LARGE for d in deps) > 2:
            deps.remove(max(d for d in deps if sizes[d] == LARGE))
        r = rng.random()
        size = LARGE if big and r < 0.02 else MEDIUM if big and r < 0.10 else SMALL
        sleep = ""
        if max_sleep > 0 and rng.random() < 0.8:
            sleep = f"{rng.uniform(0, max_sleep):.2f}"
        tag = f"{seed}-{i}"
        refs = {f"d{k}": dag.output(d) for k, d in enumerate(deps)}
        spec = JobSpec(command=["sh", "-c", _script(tag, size, sleep, runlog)], refs=refs, outputs=["stdout"])
        dag.specs.append(spec)
        dag.ids.append(spec.job_id())
        dag.deps.append(deps)
        sizes.append(size)
        # Inputs are named d0, d1, ... in the order of `deps`: glob order.
        dag.expected.append(expected_output(tag, [dag.expected[d] for d in deps], size))
    return dag


def read_runlog(path: str) -> dict[str, list[float]]:
    """{tag: start times of its executions, in order} from a `runlog` file."""
    runs: dict[str, list[float]] = {}
    with open(path) as f:
        for line in f:
            tag, _, when = line.strip().partition(" ")
            if tag:
                runs.setdefault(tag, []).append(float(when))
    return runs
