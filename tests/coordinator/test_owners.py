"""Job owners and user scope (actors/coordinator/owners.py), in process: the
coordinator's real op handlers called with the caller a ZAP handler would
have tagged (`ctx.user`), no sockets; the journal is real SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from weft.actors.coordinator import control_ops, gc_ops, owners, submission_ops
from weft.actors.coordinator.journal import Journal
from weft.actors.coordinator.node import CoordinatorNode
from weft.actors.coordinator.replay import replay
from weft.actors.coordinator.state import CoordinatorState
from weft.actors.model import JobSpec
from weft.bus.errors import BusError
from weft.bus.rpc import CallContext
from weft.runtime.node import NodeConfig

ALICE, BOB, ADMIN = "user:alice", "user:bob", "admin:root"


def ctx(user: str | None, op: str) -> CallContext:
    return CallContext("client-1", op, b"id", "call", user)


def job(name: str, *, refs: dict[str, str] | None = None, priority: int = 0, **kw: object) -> JobSpec:
    return JobSpec(command=["true"], name=name, outputs=["stdout"], refs=refs or {}, priority=priority, **kw)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[CoordinatorNode]:
    n = CoordinatorNode(NodeConfig(data_dir=tmp_path, beacon=False), max_user_priority=5)
    n.state.submit([job("a1"), job("a2", groups=["g"])], owner=ALICE)
    n.state.submit([job("b1", groups=["g"])], owner=BOB)
    yield n
    n.journal.close()


def forbidden(fn, *args) -> str:  # noqa: ANN001
    with pytest.raises(BusError) as e:
        r = fn(*args)
        if hasattr(r, "__await__"):  # an async op: refused before its first await

            async def bounded() -> None:
                with trio.fail_after(5):  # (let through, it would wait for a journal commit)
                    await r

            trio.run(bounded)
    assert e.value.code == "forbidden", e.value
    return e.value.message


def test_a_user_reads_its_own_jobs_and_is_refused_anothers(node: CoordinatorNode) -> None:
    seen = node._op_status({"jobs": ["a1"]}, ctx(ALICE, "status"))["jobs"][0]
    assert seen["job"] == "a1" and seen["owner"] == ALICE
    msg = forbidden(node._op_status, {"jobs": ["b1"]}, ctx(ALICE, "status"))
    assert "'status'" in msg and "user key (user:alice)" in msg and "b1" in msg and "\n" not in msg
    # An admin, and a cluster in the clear (no key), see every job.
    assert node._op_status({"jobs": ["b1"]}, ctx(ADMIN, "status"))["jobs"][0]["owner"] == BOB
    assert node._op_status({"jobs": ["b1"]}, ctx(None, "status"))["jobs"][0]["job"] == "b1"
    for op, body in (("logs", {"job": "b1"}), ("progress", {"jobs": ["b1"]}), ("wait", {"jobs": ["b1"]}),
                     ("tree", {"root": "b1"})):
        handler = {"logs": node._op_logs, "progress": node._op_progress, "wait": node._op_wait,
                   "tree": lambda b, c: submission_ops.tree(node, b, c)}[op]
        assert f"'{op}'" in forbidden(handler, body, ctx(ALICE, op))


def test_listings_show_a_user_only_its_own_jobs(node: CoordinatorNode) -> None:
    listed = node._op_status({"limit": 10}, ctx(ALICE, "status"))
    assert [j["job"] for j in listed["jobs"]] == ["a1", "a2"] and sum(listed["counts"].values()) == 2
    jobs = control_ops.list_jobs(node, {"limit": 10}, ctx(BOB, "jobs"))
    assert [j["job"] for j in jobs["jobs"]] == ["b1"] and jobs["jobs"][0]["owner"] == BOB
    assert control_ops.group(node, {"group": "g"}, ctx(ALICE, "group"))["jobs"] == 1
    assert sum(control_ops.groups(node, {}, ctx(BOB, "groups"))["groups"]["g"].values()) == 1
    assert len(control_ops.list_jobs(node, {"limit": 10}, ctx(ADMIN, "jobs"))["jobs"]) == 3


def test_a_user_cannot_cancel_delete_or_locate_anothers_job(node: CoordinatorNode) -> None:
    assert "'cancel'" in forbidden(control_ops.cancel, node, {"jobs": ["b1"]}, ctx(ALICE, "cancel"))
    assert not node.graph.jobs["b1"].done  # untouched
    assert "'delete'" in forbidden(gc_ops.op_delete, node, {"jobs": ["b1"]}, ctx(ALICE, "delete"))  # not "unfinished"
    node.graph.jobs["b1"].state = "succeeded"
    assert "'delete'" in forbidden(gc_ops.op_delete, node, {"jobs": ["b1"]}, ctx(ALICE, "delete"))
    assert "b1" in node.graph.jobs
    msg = forbidden(node._op_locate, {"object": "b1/stdout"}, ctx(ALICE, "locate"))
    assert "'locate'" in msg and "another user's job" in msg
    assert node._op_locate({"object": "a1/stdout"}, ctx(ALICE, "locate"))["name"] == "a1/stdout"
    assert node._op_locate({"object": "b1/stdout"}, ctx(ADMIN, "locate"))["name"] == "b1/stdout"
    assert node._job("b1", ctx(ADMIN, "cancel")).id == "b1"


def test_what_a_user_may_not_submit(node: CoordinatorNode) -> None:
    me = ctx(ALICE, "submit")
    owners.check_submit(node, me, [job("ok", priority=5)])  # within --max-user-priority
    msg = forbidden(owners.check_submit, node, me, [job("hi", priority=6)])
    assert "priority 6" in msg and "at most 5" in msg
    owners.check_submit(node, ctx(ADMIN, "submit"), [job("hi", priority=1000)])
    # Reading another user's output, or spawning into another user's tree, by proxy.
    assert "b1/stdout" in forbidden(owners.check_submit, node, me, [job("r", refs={"x": "b1/stdout"})])
    owners.check_submit(node, me, [job("r", refs={"x": "a1/stdout"})])
    assert "b1" in forbidden(owners.check_submit, node, me, [job("c", spawned_by="b1")])


def test_children_belong_to_their_roots_owner_and_owners_are_interned(node: CoordinatorNode) -> None:
    # A child submitted under a1 (by the job, whatever key it holds) is alice's.
    results, _ = node.state.submit([job("a1.child", spawned_by="a1")], owner=ADMIN)
    assert results[0].job.owner == ALICE
    many, _ = node.state.submit([job(f"x{i}") for i in range(3)], owner=owners.owner_of_call(ctx(BOB, "submit"), {}))
    assert len({id(r.job.owner) for r in many} | {id(node.graph.jobs["b1"].owner)}) == 1


def test_in_the_clear_the_owner_is_the_name_the_client_sent(node: CoordinatorNode) -> None:
    assert owners.owner_of_call(None, {"owner": "carol"}) == "carol"
    assert owners.owner_of_call(ctx(BOB, "submit"), {"owner": "carol"}) == BOB  # a key wins over a claim
    with pytest.raises(BusError, match="owner 'x y' is not a user name"):
        owners.owner_of_call(None, {"owner": "x y"})


def test_the_owner_is_journaled_and_replayed(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    state = CoordinatorState()
    _, effects = state.submit([job("a1"), job("b1")], owner=ALICE)
    state.graph.jobs["b1"].owner = BOB
    for e in effects:
        for j in getattr(e, "new", ()):
            journal.stage_new(j)
    journal.commit()
    journal.close()
    again = CoordinatorState()
    reopened = Journal(tmp_path / "journal.sqlite")
    replay(reopened, again, settle=0)
    reopened.close()
    assert again.graph.jobs["a1"].owner == ALICE and again.graph.jobs["b1"].owner == BOB


def _journal_with_a_secret(tmp_path: Path) -> None:
    from weft.actors.coordinator import secrets

    journal = Journal(tmp_path / "journal.sqlite")
    state = CoordinatorState()
    results, effects = state.submit([job("s1"), job("plain")], owner=ALICE)
    for e in effects:
        for j in getattr(e, "new", ()):
            journal.stage_new(j)
    secrets.keep(state, journal, results[:1], {"TOKEN": "v4lue-kept-apart"})
    assert state.secrets == {"s1": {"TOKEN": "v4lue-kept-apart"}}
    journal.commit()
    journal.close()


def _replayed(tmp_path: Path) -> CoordinatorState:
    again = CoordinatorState()
    reopened = Journal(tmp_path / "journal.sqlite")
    replay(reopened, again, settle=0)
    reopened.close()
    return again


def test_secrets_survive_a_restart_in_a_private_file_apart_from_the_journal(tmp_path: Path) -> None:
    from weft.actors.coordinator import secrets

    _journal_with_a_secret(tmp_path)
    kept = tmp_path / "secrets"
    assert kept.stat().st_mode & 0o777 == 0o600
    # Only that file holds the value: not the journal (nor its WAL).
    assert [f.name for f in tmp_path.iterdir() if b"v4lue-kept-apart" in f.read_bytes()] == ["secrets"]
    again = _replayed(tmp_path)
    s1, plain = again.graph.jobs["s1"], again.graph.jobs["plain"]
    assert not s1.done and not plain.done
    assert again.secrets == {"s1": {"TOKEN": "v4lue-kept-apart"}}  # what its start message will carry
    # The job ends: its secrets leave memory and the file.
    s1.state = "succeeded"
    journal = Journal(tmp_path / "journal.sqlite")
    secrets.drop_ended(again, [s1], journal)
    journal.close()
    assert again.secrets == {} and not kept.exists()
    with pytest.raises(Exception, match="for command jobs"):
        secrets.check([JobSpec(call="m:f", name="c")], {"TOKEN": "x"})


def test_a_job_whose_secrets_file_is_gone_fails_input_lost_after_a_restart(tmp_path: Path) -> None:
    _journal_with_a_secret(tmp_path)
    (tmp_path / "secrets").unlink()
    again = _replayed(tmp_path)
    s1, plain = again.graph.jobs["s1"], again.graph.jobs["plain"]
    assert s1.state == "failed" and s1.code == "input-lost" and "TOKEN" in s1.cause and "submit it again" in s1.cause
    assert not plain.done  # no secrets: it runs as before


def test_a_user_lists_and_deletes_only_its_own_recurring_jobs(node: CoordinatorNode) -> None:
    node.state.define_recurring("nightly-b", job("n"), 60.0, owner=BOB)
    assert trio.run(submission_ops.recurring, node, {"do": "ls"}, ctx(ALICE, "recurring"))["recurring"] == []
    msg = forbidden(submission_ops.recurring, node, {"do": "delete", "name": "nightly-b"}, ctx(ALICE, "recurring"))
    assert "another user defined it" in msg and "nightly-b" in node.state.recurring
    assert [d["name"] for d in trio.run(submission_ops.recurring, node, {"do": "ls"}, ctx(BOB, "recurring"))[
        "recurring"]] == ["nightly-b"]


def test_secrets_on_the_wire_are_beside_the_spec_and_checked_without_echoing_values() -> None:
    from weft.protocol.fields import BadRequest
    from weft.protocol.jobs import Submit
    from weft.protocol.tasks import Start

    spec = job("w")
    start = Start("w", spec, outputs={"stdout": ["tcp://127.0.0.1:1"]}, token=1, secrets={"TOKEN": "v"})
    wire = start.to_wire()
    assert wire["sec"] == {"TOKEN": "v"} and "v" not in str(wire["spec"])
    assert Start.from_wire(wire).secrets == {"TOKEN": "v"} and "sec" not in Start("w", spec).to_wire()
    sub = Submit([spec], secrets={"TOKEN": "v"}, owner="carol").to_wire()
    back = Submit.from_wire(sub)
    assert back.secrets == {"TOKEN": "v"} and back.owner == "carol" and "secrets" not in Submit([spec]).to_wire()
    for bad in ({"WEFT_JOB": "hunter2"}, {"1X": "hunter2"}, {"OK": "hun\0ter2"}, {"OK": 7}):
        with pytest.raises(BadRequest) as e:
            Submit.from_wire({**sub, "secrets": bad})
        assert "hunter2" not in str(e.value) and "\n" not in str(e.value)
