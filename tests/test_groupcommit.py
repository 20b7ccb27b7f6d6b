"""Group commit (actors/groupcommit.py): `begin` asks for a flush at once and
`durable(begun)` returns only once what was staged before `begin` is flushed,
even when a flush was already under way when `begin` was called."""

from __future__ import annotations

import pytest
import trio

from weft.actors.groupcommit import FlushFailed, GroupCommit


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


class _Full(Exception):
    code = "no-space"


async def _failing_flush(error: Exception, caplog: pytest.LogCaptureFixture) -> str:
    def flush() -> None:
        raise error

    commits = GroupCommit(flush, what="object changes")
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(commits.run)
            with pytest.raises(FlushFailed, match="could not make the object changes durable"):
                await commits.durable()
            nursery.cancel_scope.cancel()
    (record,) = [r for r in caplog.records if "flushing object changes failed" in r.getMessage()]
    return record.levelname


async def test_a_full_disk_is_a_warning_and_every_waiting_writer_is_told(caplog: pytest.LogCaptureFixture) -> None:
    # The chaos soak's disk-full fault: a metadata commit that meets the full
    # disk is the machine's state, not the daemon's fault (log errors fail the soak).
    assert await _failing_flush(_Full("no space left on device committing object metadata"), caplog) == "WARNING"


async def test_any_other_flush_failure_is_an_error(caplog: pytest.LogCaptureFixture) -> None:
    assert await _failing_flush(OSError(5, "Input/output error"), caplog) == "ERROR"
