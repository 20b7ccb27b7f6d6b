"""Group commit (actors/groupcommit.py): `begin` asks for a flush at once and
`durable(begun)` returns only once what was staged before `begin` is flushed,
even when a flush was already under way when `begin` was called."""

from __future__ import annotations

import trio

from weft.actors.groupcommit import GroupCommit


async def test_what_was_staged_before_begin_is_flushed_before_durable_returns() -> None:
    staged: list[str] = []
    flushed: list[list[str]] = []
    in_flush = trio.Event()
    release = trio.Event()

    async def flush() -> None:
        batch = list(staged)
        staged.clear()
        if not flushed:  # the first flush is slow: a `begin` comes while it runs
            in_flush.set()
            await release.wait()
        flushed.append(batch)

    commits = GroupCommit(flush)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(commits.run)
            staged.append("a")
            commits.mark()
            await in_flush.wait()  # "a" is being written
            staged.append("b")
            begun = commits.begin()
            release.set()
            await commits.durable(begun)
            assert [x for batch in flushed for x in batch] == ["a", "b"]
            staged.append("c")
            await commits.durable()
            assert flushed[-1] == ["c"]
            nursery.cancel_scope.cancel()
