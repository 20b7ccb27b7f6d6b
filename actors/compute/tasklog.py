"""The compute node's memory across restarts: which tasks it started and how they ended.

An append-only file of msgpack records, one per state that matters
(started, done, deleted; the records of one batch of starts or deletes go in
one write call), never fsynced: it has to survive the node process
being killed, not the machine losing power, and the page cache does that for
the price of one write call. A torn last record (the process died mid-write)
is ignored on load.

A `started` record carries the job's spec; the records after it for the same
attempt carry only what changed, and loading merges them.

On restart, a task that has a `done` record comes back as it ended (the
coordinator adopts its result instead of running it again); a task that only
has a `started` record was running when the node died, and comes back
failed-soft. The file is compacted on load.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import msgpack

log = logging.getLogger("weft.compute")


class TaskLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def load(self) -> dict[str, dict[str, Any]]:
        """The merged records of every task not deleted, then a compacted file."""
        records: dict[str, dict[str, Any]] = {}
        try:
            with open(self.path, "rb") as f:
                unpacker = msgpack.Unpacker(f, raw=False, max_buffer_size=64 << 20)
                try:
                    for rec in unpacker:
                        if not isinstance(rec, dict) or not isinstance(rec.get("job"), str):
                            continue
                        job = rec["job"]
                        if rec.get("s") == "deleted":
                            records.pop(job, None)
                        elif "spec" in rec or job not in records:
                            records[job] = rec  # an attempt starts
                        else:
                            # Later records of an attempt carry only what changed.
                            records[job] = {**records[job], **rec}
                except (msgpack.UnpackException, ValueError) as e:
                    log.warning("task log %s: ignoring a damaged tail (%s)", self.path, e)
        except FileNotFoundError:
            pass
        self._rewrite(records.values())
        return records

    def _rewrite(self, records: Any) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            for rec in records:
                f.write(msgpack.packb(rec))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def write(self, record: dict[str, Any]) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, msgpack.packb(record))

    def write_many(self, records: list[dict[str, Any]]) -> None:
        """Records of one request (a batch of starts, of deletes) in one write:
        a write call per batch rather than per task. They are all written
        before the request's answer or any event of theirs leaves the node."""
        if not records:
            return
        if len(records) == 1:
            self.write(records[0])
            return
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        packb = msgpack.packb
        os.write(self._fd, b"".join([packb(r) for r in records]))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
