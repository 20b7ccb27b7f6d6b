"""The storage node's `replicate` op on real daemons (no coordinator): it
answers at once, even while the source is paused (the copy is a background
task, never a handler waiting on another storage node: the deadlock rule);
the copy's end is news on the target's event queue (`finished` once landed
and durable; `deleted` when it failed, with nothing partial left behind)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from weft.actors.storage.client import read_all, write_bytes
from weft.bus.peers import connect
from weft.localcluster.cluster import Proc
from weft.runtime.settings import to_args

ROOT = Path(__file__).resolve().parents[2]
DATA = bytes(range(256)) * 6000  # ~1.5 MB: two read chunks, a content file
# An answer "at once" is well under the 10 s call timeout the caller would
# otherwise wait out; a handler that waited on the paused source would not answer at all.
ANSWER_BOUND = 5.0


@pytest.fixture
def storages(tmp_path: Path) -> Iterator[list[Proc]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEFT_")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    procs = []
    try:
        for i in range(2):
            args = ["storage", *to_args("storage", {
                "data_dir": tmp_path / f"storage-{i}", "node_id": f"storage-{i}", "no_beacon": True})]
            p = Proc("storage", args, tmp_path / f"storage-{i}.log", env)
            procs.append(p)
            p.wait_ready(20)
        yield procs
    finally:
        for p in procs:
            p.signal(signal.SIGCONT)
            p.stop(5)


def test_replicate_answers_at_once_and_the_copy_lands_as_finished_news(storages: list[Proc]) -> None:
    source, target = storages

    async def main() -> None:
        async with connect(source.endpoint, "test", timeout=10.0) as src, \
                connect(target.endpoint, "test", timeout=10.0) as dst:
            await write_bytes(src, "j1/result", DATA, 7)
            since = (await dst.call("list", {}))["next"]
            source.signal(signal.SIGSTOP)
            try:
                t0 = time.monotonic()
                with trio.fail_after(ANSWER_BOUND):
                    r = await dst.call("replicate", {"items": [["j1/result", source.endpoint]]})
                    assert r == {"accepted": ["j1/result"], "refused": {}}
                    await dst.call("usage", {})  # and it goes on serving
                assert time.monotonic() - t0 < ANSWER_BOUND
            finally:
                source.signal(signal.SIGCONT)
            with trio.fail_after(20):
                while True:
                    p = await dst.call("poll", {"since": since, "timeout": 5.0})
                    since = p["next"]
                    kinds = {(e[1], e[2]["name"]) for e in p["events"]}
                    if ("finished", "j1/result") in kinds:
                        break
            assert await read_all(dst, "j1/result") == DATA
            info = await dst.call("stat", {"name": "j1/result"})
            assert info["token"] == 7 and info["size"] == len(DATA)
            # Already here: refused, not copied again.
            r = await dst.call("replicate", {"items": [["j1/result", source.endpoint]]})
            assert r["accepted"] == [] and r["refused"]["j1/result"]["code"] == "exists"

    trio.run(main)


def test_a_failed_copy_is_deleted_news_and_leaves_nothing(storages: list[Proc]) -> None:
    source, target = storages

    async def main() -> None:
        async with connect(target.endpoint, "test", timeout=10.0) as dst:
            since = (await dst.call("list", {}))["next"]
            # The source holds no such object: the copy fails there.
            r = await dst.call("replicate", {"items": [["j9/result", source.endpoint]]})
            assert r["accepted"] == ["j9/result"]
            with trio.fail_after(20):
                while True:
                    p = await dst.call("poll", {"since": since, "timeout": 5.0})
                    since = p["next"]
                    if ("deleted", "j9/result") in {(e[1], e[2]["name"]) for e in p["events"]}:
                        break
            listing = await dst.call("list", {})
            assert "j9/result" not in {o["name"] for o in listing["objects"]}
            # A malformed request is one bad-request naming the field; the node goes on.
            with pytest.raises(Exception, match="items"):
                await dst.call("replicate", {"items": [["j9/result", "not an endpoint"]]})
            await dst.call("usage", {})

    trio.run(main)
