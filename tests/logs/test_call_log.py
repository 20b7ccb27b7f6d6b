"""A callable's prints are its log: caught by its worker, one call's apart from the next's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from weft.actors.compute.pool import CallLog, WorkerPool

FNS = """
import os, sys

def shout(word):
    print("out", word)
    sys.stderr.write("err " + word + "\\n")
    os.write(1, b"raw fd 1\\n")
    sys.stdout.write("no newline")
    return b"ok"

def boom():
    print("before the error")
    raise ValueError("bad")

def quiet():
    return b"q"
"""


@pytest.fixture
async def one_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[WorkerPool]:
    (tmp_path / "weft_calllog_fns.py").write_text(FNS)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)  # buffered, as in production: flushes count
    async with WorkerPool(1) as p:  # one worker: every call below runs in the same process
        yield p


async def test_each_calls_prints_are_its_own_log(one_worker: WorkerPool) -> None:
    first = CallLog()
    assert await one_worker.run("weft_calllog_fns:shout", {"word": "a"}, log=first) == b"ok"
    assert first.data == b"out a\nerr a\nraw fd 1\nno newline"
    assert first.fd == -1  # read only while the call runs
    second = CallLog()
    assert await one_worker.run("weft_calllog_fns:shout", {"word": "b"}, log=second) == b"ok"
    assert second.data == b"out b\nerr b\nraw fd 1\nno newline"
    silent = CallLog()
    assert await one_worker.run("weft_calllog_fns:quiet", {}, log=silent) == b"q"
    assert silent.data == b""


async def test_a_failing_calls_prints_are_kept_and_a_call_without_a_log_leaves_none_behind(
        one_worker: WorkerPool) -> None:
    from weft.actors.compute.pool import CallableError

    log = CallLog()
    with pytest.raises(CallableError):
        await one_worker.run("weft_calllog_fns:boom", {}, log=log)
    assert log.data == b"before the error\n"
    # Nobody asked for this call's log: it is dropped, not passed on to the next call.
    assert await one_worker.run("weft_calllog_fns:shout", {"word": "x"}) == b"ok"
    after = CallLog()
    assert await one_worker.run("weft_calllog_fns:quiet", {}, log=after) == b"q"
    assert after.data == b""
