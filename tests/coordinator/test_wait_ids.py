"""The ids a `wait` names (node.py `_jobs`): a plain id of a known job is
looked up directly, and everything else (a name meaning its newest version,
a version, a missing or malformed id, a user key's scope) answers exactly
as `_job` does for `status`. In process: the real op handler, no sockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from weft.actors.coordinator.node import CoordinatorNode
from weft.actors.model import JobSpec, SpecError
from weft.bus.errors import BusError
from weft.bus.rpc import CallContext
from weft.runtime.node import NodeConfig


def ctx(user: str | None) -> CallContext:
    return CallContext("client-1", "wait", b"id", "call", user)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[CoordinatorNode]:
    n = CoordinatorNode(NodeConfig(data_dir=tmp_path, beacon=False))
    n.state.submit([JobSpec(command=["true"], name="build", outputs=["stdout"])], owner="user:alice")
    n.state.submit([JobSpec(command=["false"], name="build", outputs=["stdout"])], replace=True, owner="user:alice")
    n.state.submit([JobSpec(command=["true"])], owner="user:bob")
    yield n
    n.journal.close()


def _plain(node: CoordinatorNode) -> str:
    [jid] = [j for j in node.graph.jobs if not j.startswith("build")]
    return jid


def test_wait_ids_mean_what_status_ids_mean(node: CoordinatorNode) -> None:
    plain = _plain(node)
    asked = ["build", "build@1", "build@2", plain]
    got = [j.id for j in node._jobs(asked, ctx(None))]
    assert got == ["build@2", "build", "build@2", plain]  # a name is its newest version
    assert got == [node._job(j, ctx(None)).id for j in asked]


@pytest.mark.parametrize("bad", ["nope", "a b", "x" * 200, ["x"], 5, None])
def test_a_wait_for_a_missing_or_malformed_id_is_refused_as_status_refuses_it(node: CoordinatorNode, bad: object) -> None:
    with pytest.raises((BusError, SpecError)) as direct:
        node._jobs([_plain(node), bad], ctx(None))
    with pytest.raises((BusError, SpecError)) as one:
        node._job(bad, ctx(None))  # type: ignore[arg-type]
    assert type(direct.value) is type(one.value) and str(direct.value) == str(one.value)
    assert "\n" not in str(direct.value)


def test_a_user_key_still_waits_only_for_its_own_jobs(node: CoordinatorNode) -> None:
    async def wait(user: str) -> None:
        with trio.fail_after(5):
            await node._op_wait({"jobs": [_plain(node)], "timeout": 0.01}, ctx(user))

    with pytest.raises(BusError) as e:
        trio.run(wait, "user:alice")
    assert e.value.code == "forbidden" and "'wait'" in e.value.message
    trio.run(wait, "user:bob")  # its own: answered (at the timeout)
