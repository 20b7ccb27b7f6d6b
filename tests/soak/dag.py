"""The soak's random DAG: command and callable jobs, every output byte checkable.

Built on tests/faults/dag.py: the same shapes (0-3 earlier jobs as inputs
`d0`..`d2`, outputs of 17 bytes, 100 KB or 1.5 MiB), the same run log (each
execution appends "tag start-time" before it runs) and the same expected
bytes, computed in Python. About a third of the jobs are callables
(`soak_jobs:soak_job`, output `result`) instead of `sh -c` commands (output
`stdout`), so both execution paths, and the storage of both, are judged.

`max_sleep` paces the DAG: the soak wants it to last long enough for six
faults in turn, whatever N is.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from faults.dag import LARGE, MEDIUM, SMALL, _script, expected_output

from weft.actors.model import JobSpec

CALLABLE = "soak_jobs:soak_job"
CALLABLE_SHARE = 0.33


@dataclass
class SoakDag:
    seed: int
    specs: list[JobSpec] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # object name of each job's one output
    expected: list[bytes] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # "command" or "callable"

    def __len__(self) -> int:
        return len(self.specs)

    def tag(self, i: int) -> str:
        return f"{self.seed}-{i}"


def make_soak_dag(seed: int, n: int, runlog: str, max_sleep: float) -> SoakDag:
    rng = random.Random(seed)
    dag = SoakDag(seed)
    sizes: list[int] = []
    for i in range(n):
        k = rng.randint(0, 3)
        deps = sorted(rng.sample(range(i), min(i, k)))
        while sum(sizes[d] == LARGE for d in deps) > 2:  # no job reads more than 3 MiB
            deps.remove(max(d for d in deps if sizes[d] == LARGE))
        r = rng.random()
        size = LARGE if r < 0.02 else MEDIUM if r < 0.10 else SMALL
        sleep = f"{rng.uniform(0, max_sleep):.2f}" if max_sleep > 0 and rng.random() < 0.8 else ""
        tag = dag.tag(i)
        refs = {f"d{j}": dag.outputs[d] for j, d in enumerate(deps)}
        if rng.random() < CALLABLE_SHARE:
            inputs = {"tag": tag, "runlog": runlog, "size": str(size)}
            if sleep:
                inputs["sleep"] = sleep
            spec = JobSpec(call=CALLABLE, inputs=inputs, refs=refs, outputs=["result"])
            kind, out = "callable", "result"
        else:
            spec = JobSpec(command=["sh", "-c", _script(tag, size, sleep, runlog)], refs=refs, outputs=["stdout"])
            kind, out = "command", "stdout"
        dag.specs.append(spec)
        dag.ids.append(spec.job_id())
        dag.outputs.append(f"{dag.ids[-1]}/{out}")
        dag.kinds.append(kind)
        sizes.append(size)
        dag.expected.append(expected_output(tag, [dag.expected[d] for d in deps], size))
    return dag
