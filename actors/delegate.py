"""Delegation from a callable job: finish by handing an output over to a new job."""

from __future__ import annotations

from typing import Any

from weft.protocol.record import record

from .model import JobSpec, delegation_from_wire


@record(slots=False)
class Delegate:
    """Return this from a callable to finish by handing the output to a new job.

    `job` is a JobSpec or its wire form; `stream` names the output of that job
    that takes the place of this job's output. The delegation is validated when
    the Delegate is made, so a bad one fails inside the user's function, with
    their traceback.
    """

    job: JobSpec | dict[str, Any]
    stream: str = "result"

    def __post_init__(self) -> None:
        self.to_wire()

    def to_wire(self) -> dict[str, Any]:
        job = self.job.to_wire() if isinstance(self.job, JobSpec) else self.job
        wire = {"job": job, "stream": self.stream}
        delegation_from_wire(wire)
        return wire

    def spec(self) -> tuple[JobSpec, str]:
        """The delegated job as a JobSpec, and the stream it hands over."""
        return delegation_from_wire(self.to_wire())
