"""`weft up --secure`: a one-machine cluster with CurveZMQ on every connection, used as a user would."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Daemons, assert_one_line_error, clean_env, free_port, wait_for, weft
from helpers import Tap


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("secure")
    daemons = Daemons(tmp)
    try:
        up = daemons.start("up", "--secure", "--json", "--compute", "1", "--storage", "1", "--slots", "1",
                           "--data-dir", str(tmp / "data"), "--listen", f"tcp://127.0.0.1:{free_port()}")
        info = json.loads(daemons.ready_line(up))
        info["tmp"] = tmp
        info["daemons"] = daemons
        yield info
    finally:
        daemons.stop()


def test_the_admin_key_runs_jobs_and_reads_outputs(cluster: dict) -> None:
    env = clean_env(WEFT_KEY=cluster["key"])
    p = weft("submit", "-c", cluster["coordinator"], "--wait", "--", "sh", "-c", "echo secured", env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "secured"


def test_no_key_is_refused_quickly_in_one_line(cluster: dict) -> None:
    started = time.monotonic()
    p = weft("nodes", "-c", cluster["coordinator"])
    assert_one_line_error(p, "secure cluster", "--key FILE or WEFT_KEY")
    assert time.monotonic() - started < 15  # not the client's 60 s of retries


def test_an_unknown_key_is_refused_in_one_line(cluster: dict) -> None:
    keys = Path(cluster["key"]).parent
    other = cluster["tmp"] / "other"
    other.mkdir(exist_ok=True)
    (other / "cluster.public").write_text((keys / "cluster.public").read_text())
    p = weft("keys", "generate", str(other), "--role", "admin", "--name", "mallory")
    assert p.returncode == 0, p.stderr
    p = weft("--key", str(other / "mallory.secret"), "nodes", "-c", cluster["coordinator"])
    assert_one_line_error(p, "refused this client's key", "allow-list")


def test_a_compute_node_with_an_unknown_key_cannot_register(cluster: dict) -> None:
    keys = Path(cluster["key"]).parent
    # A node that has the cluster key (it can serve) but its own key is not allowed.
    rogue = cluster["tmp"] / "rogue-keys"
    rogue.mkdir(exist_ok=True)
    for f in ("cluster.secret", "cluster.public", "allow"):
        (rogue / f).write_text((keys / f).read_text())
    assert weft("keys", "generate", str(rogue), "--role", "node").returncode == 0
    daemons: Daemons = cluster["daemons"]
    p = daemons.start("compute", "--security", "curve", "--keys", str(rogue), "--coordinator", cluster["coordinator"],
                      "--no-beacon", "--node-id", "rogue", "--data-dir", str(cluster["tmp"] / "rogue"))
    assert daemons.ready_line(p).startswith("weft compute rogue ")
    log = Path(cluster["tmp"]) / "data" / "logs" / "coordinator.log"
    wait_for(lambda: "is not on the allow-list" in log.read_text(), 20, "the coordinator refused the rogue's key")
    listed = weft("nodes", "--json", "-c", cluster["coordinator"], env=clean_env(WEFT_KEY=cluster["key"]))
    assert listed.returncode == 0, listed.stderr
    assert "rogue" not in {n["node"] for n in json.loads(listed.stdout)["nodes"]}
    p.terminate()
    p.wait(20)


def test_weft_up_secure_keeps_its_keys_across_restarts(cluster: dict) -> None:
    keys = Path(cluster["key"]).parent
    assert sorted(f.name for f in keys.iterdir() if f.suffix == ".secret") == [
        "admin.secret", "cluster.secret", "coordinator.secret", "node.secret"]
    assert (keys / "admin.secret").stat().st_mode & 0o077 == 0
    # Making them again (what a restart of `weft up --secure` does) changes nothing.
    from weft.cli.keys import make_cluster_keys

    before = {f.name: f.read_bytes() for f in keys.iterdir()}
    make_cluster_keys(keys)
    assert {f.name: f.read_bytes() for f in keys.iterdir()} == before


def test_a_job_command_does_not_cross_the_network_in_the_clear(cluster: dict, tmp_path: Path) -> None:
    # tcpdump-like: the tap of tests/test_curve.py in front of the secure coordinator.
    tap = Tap(cluster["coordinator"])
    try:
        env = clean_env(WEFT_KEY=cluster["key"])
        p = weft("submit", "-c", tap.endpoint, "--wait", "--", "sh", "-c", "echo top-secret-command-7",
                 env=env)
        assert p.returncode == 0, p.stderr
        assert len(tap.seen) > 0 and b"top-secret-command-7" not in tap.seen
    finally:
        tap.close()




@pytest.mark.parametrize("role", ["coordinator", "storage", "compute"])
def test_a_daemon_refuses_to_listen_beyond_loopback_in_the_clear(role: str, tmp_path: Path) -> None:
    p = weft(role, "--listen", f"tcp://0.0.0.0:{free_port()}", "--data-dir", str(tmp_path / role), "--no-beacon")
    assert_one_line_error(p, "refusing to listen on tcp://0.0.0.0:", "--security curve", "--insecure")


def test_insecure_listens_beyond_loopback_and_warns(tmp_path: Path, daemons: Daemons) -> None:
    p = daemons.start("storage", "--listen", f"tcp://0.0.0.0:{free_port()}", "--data-dir", str(tmp_path / "s"),
                      "--no-beacon", "--insecure")
    assert daemons.ready_line(p).startswith("weft storage ")
    p.err.seek(0)  # type: ignore[attr-defined]
    assert "WITHOUT security (--insecure)" in p.err.read()  # type: ignore[attr-defined]


def _user_key(cluster: dict, name: str) -> Path:
    keys = Path(cluster["key"]).parent
    d = cluster["tmp"] / f"user-{name}"
    d.mkdir(exist_ok=True)
    (d / "cluster.public").write_text((keys / "cluster.public").read_text())
    p = weft("keys", "generate", str(d), "--role", "user", "--name", name)
    assert p.returncode == 0, p.stderr
    return d / f"{name}.secret"


def test_an_admin_admits_a_user_who_may_submit_but_not_administer_until_revoked(cluster: dict) -> None:
    ep = cluster["coordinator"]
    admin = clean_env(WEFT_KEY=cluster["key"])
    alice_key = _user_key(cluster, "alice")
    alice = clean_env(WEFT_KEY=str(alice_key))
    assert_one_line_error(weft("nodes", "-c", ep, env=alice), "refused this client's key")
    # A user cannot admit itself.
    assert_one_line_error(weft("keys", "allow", str(alice_key.with_suffix(".public")), "-c", ep, env=alice),
                          "refused this client's key")
    p = weft("keys", "allow", str(alice_key.with_suffix(".public")), "-c", ep, "--json", env=admin)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["failed"] == {} and len(r["applied"]) == 3  # the coordinator, its compute and storage node
    p = weft("submit", "-c", ep, "--wait", "--", "sh", "-c", "echo from alice", env=alice)
    assert p.returncode == 0 and p.stdout.strip().splitlines()[-1] == "from alice", p.stderr
    assert_one_line_error(weft("pause", "-c", ep, env=alice), "'pause'", "not allowed for a user key (user:alice)")
    assert_one_line_error(weft("gc", "-c", ep, env=alice), "'gc'", "not allowed")
    assert weft("keys", "revoke", "alice", "-c", ep, env=admin).returncode == 0
    assert_one_line_error(weft("nodes", "-c", ep, env=alice), "refused this client's key")


async def test_a_node_key_cannot_start_tasks_or_fence_a_compute_node(cluster: dict) -> None:
    from weft.bus.curve import load_client
    from weft.bus.errors import BusError
    from weft.bus.peers import connect

    keys = Path(cluster["key"]).parent
    node_key = load_client(keys / "node.secret", read_identity_public(keys / "cluster.public"))
    compute = cluster["compute"][0]
    async with connect(compute, "rogue", timeout=5, security=node_key) as peer:
        with pytest.raises(BusError) as err:
            await peer.call("start", {"job": "jevil", "token": 1, "spec": {"c": ["sh", "-c", "touch /tmp/pwned"]}})
        assert err.value.code == "forbidden" and "node key (node:node)" in err.value.message
        # A ping with a huge epoch is answered, and the epoch ignored.
        reply = await peer.call("ping", {"epoch": 1 << 60})
        assert reply["epoch"] < 1 << 60
    # The real coordinator still schedules on it.
    p = weft("submit", "-c", cluster["coordinator"], "--wait", "--", "true", env=clean_env(WEFT_KEY=cluster["key"]))
    assert p.returncode == 0, p.stderr


def read_identity_public(path: Path) -> str:
    from weft.bus.curve import read_identity

    return read_identity(path, secret=False).public


def test_a_revoked_key_is_refused_on_a_connection_made_before_the_revoke(cluster: dict) -> None:
    from weft.actors.client import Client
    from weft.bus.errors import BusError

    ep = cluster["coordinator"]
    admin = clean_env(WEFT_KEY=cluster["key"])
    carol_key = _user_key(cluster, "carol")
    assert weft("keys", "allow", str(carol_key.with_suffix(".public")), "-c", ep, env=admin).returncode == 0
    # One Client, one connection, kept open across the revoke (as a long-lived program keeps it).
    client = Client(ep, key=carol_key, timeout=10, retry_for=0)
    try:
        assert client.nodes()  # the connection is made and admitted
        assert weft("keys", "revoke", "carol", "-c", ep, env=admin).returncode == 0
        with pytest.raises(BusError) as err:
            client.nodes()
        assert err.value.code == "forbidden"
        assert "'nodes' refused: the key user:carol was revoked" in str(err.value)
        assert "\n" not in str(err.value)
    finally:
        client.close()
    # The admin's own connection, made before the revoke too, still works.
    assert weft("nodes", "-c", ep, env=admin).returncode == 0
