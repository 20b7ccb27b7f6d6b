"""What a submit gives back: a Future per job, and the names and errors that go with it.

A Future asks its Client for everything (status, wait, result, cancel,
progress, logs); it holds only the job's id and outputs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from weft.actors.model import split_object_name
from weft.actors.trees import object_of
from weft.protocol.enums import TERMINAL_JOB_STATES, JobState
from weft.protocol.jobs import final_state


class ClientView(Protocol):
    """What a Future asks of its client (client.py, which imports this module)."""

    def status(self, jobs: Sequence[str]) -> list[Any]: ...

    def wait(self, futures: Sequence[Any], timeout: float | None = None) -> list[Any]: ...

    def get(self, name: str) -> Any: ...

    def cancel(self, jobs: Sequence[str], *, dependents: bool = False) -> Any: ...

    def progress(self, jobs: Sequence[str]) -> dict[str, Any]: ...

    def logs(self, job: str, follow: bool = False) -> Any: ...


class JobFailed(Exception):
    """The job (or one it depended on) failed; `.status` has the details."""

    def __init__(self, job: str, status: dict[str, Any]) -> None:
        final = status.get("final", status)
        cause = final.get("cause") or final.get("outcome") or final.get("state")
        super().__init__(f"job {job} {final.get('state')}: {cause}")
        self.job = job
        self.status = status


class _Manifest(Exception):
    """Streaming found a manifest where bytes were expected (get_to)."""

    def __init__(self, data: bytes) -> None:
        self.data = data


class ObjectRef:
    """A named object on a storage node, usable as a job input."""

    def __init__(self, name: str) -> None:
        name = object_of(name)  # a put's `sha256-<hex>` names its content object
        split_object_name(name)
        self.name = name

    def __repr__(self) -> str:
        return f"ObjectRef({self.name!r})"


class Future:
    """A submitted job. `result()` waits for it and returns its main output.

    When the job already existed, `cached` says it had finished and `joined`
    that it was queued or running; `differs` names the settings asked for
    (e.g. "time_limit", "priority") that the existing job keeps its own of.
    """

    def __init__(self, client: ClientView, job: str, outputs: list[str], cached: bool = False,
                 joined: bool = False, differs: Sequence[str] = ()) -> None:
        self.client = client
        self.job = job
        self.outputs = outputs
        self.cached = cached
        self.joined = joined
        self.differs = list(differs)
        self._status: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"Future({self.job})"

    @property
    def key(self) -> str:
        """The object that stands for this job's result: `result`, `stdout`, or its first output."""
        names = [o.split("/", 1)[1] for o in self.outputs]
        for preferred in ("result", "stdout"):
            if preferred in names:
                return f"{self.job}/{preferred}"
        if not self.outputs:
            raise ValueError(f"job {self.job} has no outputs")
        return self.outputs[0]

    def output(self, name: str) -> ObjectRef:
        return ObjectRef(f"{self.job}/{name}")

    def status(self) -> dict[str, Any]:
        return self.client.status([self.job])[0]

    def done(self) -> bool:
        return final_state(self._status or self.status()) in TERMINAL_JOB_STATES

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait until finished; return the status. Raises TimeoutError."""
        self._status = self.client.wait([self], timeout=timeout)[0]
        return self._status

    def result(self, timeout: float | None = None) -> bytes | None:
        st = self.wait(timeout)
        if final_state(st) != JobState.SUCCEEDED:
            raise JobFailed(self.job, st)
        return self.client.get(self.key) if self.outputs else None

    def cancel(self, dependents: bool = True) -> None:
        self.client.cancel([self.job], dependents=dependents)

    def progress(self) -> tuple[float, str] | None:
        """The job's latest reported progress (percent, message) while it runs, else None."""
        return self.client.progress([self.job]).get(self.job)

    def logs(self, follow: bool = False) -> bytes | Iterator[bytes]:
        """The job's stdout and stderr as written; see Client.logs."""
        return self.client.logs(self.job, follow)
