"""A `wait` answer's rows (protocol/waitrows.py) read back as the very views
`status` shows: same keys, order and values after the wire; a job with more
to tell than a row holds is answered with its view."""

from __future__ import annotations

import msgpack
import pytest

from weft.actors.coordinator.views import wait_row
from weft.protocol.fields import BadRequest
from weft.protocol.jobs import Wait, WaitReply

from .harness import Cluster, spec


def _wire(x):  # noqa: ANN001, ANN202
    return msgpack.unpackb(msgpack.packb(x))


def _answer(c: Cluster, names: list[str], now: float) -> tuple[list, list[dict]]:
    """The coordinator's answer to a `wait` asking for rows (as `_op_wait`
    builds it), read by the client; beside it the views `status` shows."""
    jobs = [c.job(n) for n in names]
    sent = [wait_row(j) or j.summary(now) for j in jobs]
    got = WaitReply.from_wire(_wire(WaitReply(sent, True, now).to_wire())).jobs
    return sent, [list(g.items()) for g in got]


def test_a_succeeded_job_comes_as_a_row_and_reads_back_as_its_view() -> None:
    c = Cluster(computes=1, slots=2)
    c.submit(spec("a"), spec("b", "a"), spec("c"))
    c.graph.jobs["c"].owner = "alice"
    assert sorted(c.started()) == ["a", "c"]
    c.ends("a")
    c.ends("c")
    c.clock.advance(2.0)
    now = c.clock.wall()
    sent, got = _answer(c, ["a", "b", "c"], now)
    assert [type(s) for s in sent] == [list, dict, list]  # b waits: its view
    want = [list(_wire(c.job(n).summary(now)).items()) for n in ("a", "b", "c")]
    assert got == want
    assert dict(got[2])["owner"] == "alice" and dict(got[0])["ran"] >= 0.0


def test_a_job_with_a_cause_or_a_failure_is_answered_with_its_view() -> None:
    c = Cluster(computes=1, slots=2)
    c.submit(spec("a"), spec("x"))
    c.started()
    c.ends("a", "failed-soft", cause="worker died")  # runs again, keeps the cause
    c.ends("x", "failed-hard", cause="boom")
    c.started()
    c.ends("a")
    assert c.job("a").cause == "worker died"
    assert wait_row(c.job("a")) is None and wait_row(c.job("x")) is None
    now = c.clock.wall()
    _, got = _answer(c, ["a", "x"], now)
    assert got == [list(_wire(c.job(n).summary(now)).items()) for n in ("a", "x")]


def test_rows_are_asked_for_and_a_malformed_one_is_named() -> None:
    assert Wait(["j1"], 2.0, rows=True).to_wire() == {"jobs": ["j1"], "timeout": 2.0, "rows": True}
    assert Wait.from_wire({"jobs": ["j1"], "timeout": 2.0, "rows": True}).rows
    assert Wait(["j1"]).to_wire() == {"jobs": ["j1"], "timeout": 30.0}  # (as before: no key)
    with pytest.raises(BadRequest, match="'jobs' holds a row"):
        WaitReply.from_wire({"jobs": [["j1", "succeeded"]], "done": True, "now": 1.0})
    with pytest.raises(BadRequest, match="not numbers"):
        WaitReply.from_wire({"jobs": [["j1", "succeeded", 0, 0, "x", ["result"], 1, None, None, "success",
                                       1.0, 2.0]], "done": True, "now": 3.0})
    with pytest.raises(BadRequest, match="'now'"):
        WaitReply.from_wire({"jobs": [], "done": True, "now": "soon"})
