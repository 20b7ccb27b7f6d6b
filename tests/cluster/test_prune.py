"""`weft prune` on a real cluster: content objects nothing kept refers to go,
what a kept job reads (a tree and its files) or made (a directory output's
files) stays, and a pruned tree can be put and used again."""

from __future__ import annotations

import hashlib
import json
import signal
import time
from pathlib import Path

from weft.actors.client import Client
from weft.actors.trees import content_object, object_of

from .conftest import Weft, cluster_fixtures, wait_for

cluster, client, weft = cluster_fixtures("prune", compute=1, storage=2, slots=2)


def _sha(data: bytes) -> str:
    return content_object(hashlib.sha256(data).hexdigest())


def _prune(weft: Weft, *args: str) -> dict:
    p = weft("prune", "--json", *args)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_prune_deletes_only_what_nothing_kept_refers_to(weft: Weft, client: Client, tmp_path: Path) -> None:
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "a.txt").write_text("prune test alpha\n")
    (tree / "b.txt").write_text("prune test beta\n")
    lone = tmp_path / "lone.txt"
    lone.write_text("prune test, put and never read\n")
    lone_obj = object_of(client.put(lone))

    reader = client.submit_specs([client.spec(["sh", "-c", 'cat "$WEFT_INPUTS/src/a.txt"'], src=tree)])[0]
    assert client.wait([reader], timeout=60)[0]["state"] == "succeeded"
    tree_obj = object_of(client.put(tree))  # (already stored: the same name)
    made = weft("submit", "--output-dir", "build", "--", "sh", "-c",
                'mkdir -p "$WEFT_OUTPUTS/build" && echo prune test gamma > "$WEFT_OUTPUTS/build/g.txt"')
    assert made.returncode == 0, made.stderr
    maker = made.stdout.strip()
    assert weft("wait", maker).returncode == 0
    files = {_sha(b"prune test alpha\n"), _sha(b"prune test beta\n"), _sha(b"prune test gamma\n")}

    # Everything is recent: the default keeps it all.
    assert _prune(weft)["objects"] == 0
    dry = _prune(weft, "--keep-recent", "0", "--dry-run")
    assert dry["dry_run"] and dry["names"] == [lone_obj], dry
    assert client.get(lone_obj.split("/")[0]) == lone.read_bytes()  # a dry run deletes nothing

    r = _prune(weft, "--keep-recent", "0")
    assert (r["objects"], r["names"]) == (1, [lone_obj]) and r["referenced"] >= 4, r
    got = weft("get", lone_obj.split("/")[0])
    assert got.returncode != 0 and "no object" in got.stderr, got.stderr
    # What the kept jobs read and made is all there.
    assert client.get(reader.key) == b"prune test alpha\n"
    listed = weft("get", f"{maker}/build", "-o", str(tmp_path / "out"))
    assert listed.returncode == 0, listed.stderr
    assert (tmp_path / "out" / "g.txt").read_text() == "prune test gamma\n"  # (a tree: -o is its directory)

    # Once the jobs are forgotten, their tree and their files go too.
    assert weft("delete", reader.job, maker).returncode == 0
    r = _prune(weft, "--keep-recent", "0", "--dry-run")
    assert set(r["names"]) == files | {tree_obj}, r
    r = _prune(weft, "--keep-recent", "0")
    assert r["objects"] == 4 and not r["skipped"], r
    assert _prune(weft, "--keep-recent", "0")["objects"] == 0
    stats = client.stats()
    assert stats["prune_objects_deleted"] == 5 and stats["prune_last"] >= time.time() - 60, stats

    # The same tree put again is stored again, and a job reads it.
    again = client.submit_specs([client.spec(["sh", "-c", 'cat "$WEFT_INPUTS/src/b.txt"'], src=tree)])[0]
    assert client.wait([again], timeout=60)[0]["state"] == "succeeded"
    assert client.get(again.key) == b"prune test beta\n"


def test_prune_with_a_bad_duration_is_one_line(weft: Weft) -> None:
    p = weft("prune", "--keep-recent", "soon")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--keep-recent" in p.stderr, p.stderr


def test_prune_that_cannot_read_what_a_kept_job_reads_deletes_nothing(make_cluster, tmp_path: Path) -> None:
    """Its only storage node is gone: whether that input is a tree (whose
    files must stay) cannot be known, so nothing is pruned, and it says why."""
    c = make_cluster(compute=1, storage=1, slots=1, coordinator_args=["--heartbeat-timeout", "1"])
    w = Weft(c.endpoint)
    data = tmp_path / "in.txt"
    data.write_text("prune test, read by a kept job\n")
    with Client(c.endpoint) as cl:
        job = cl.submit_specs([cl.spec(["sh", "-c", 'cat "$WEFT_INPUTS/x"'], x=data)])[0]
        assert cl.wait([job], timeout=60)[0]["state"] == "succeeded"
        c.storages[0].signal(signal.SIGKILL)
        c.storages[0].popen.wait(10)
        wait_for(lambda: not any(n["role"] == "storage" and n["ready"] for n in cl.nodes()), 15, "storage lost")
    p = w("prune", "--keep-recent", "0")
    assert p.returncode != 0 and p.stderr.count("\n") == 1, p.stderr
    assert "no storage node holds it" in p.stderr and "nothing pruned" in p.stderr, p.stderr
