"""Issue 19's attacks, replayed as an attacker would: a raw ZeroMQ socket and msgpack, no weft code.

One secure cluster for the module (coordinator, one compute and one storage
node, CurveZMQ on, as `weft up --secure` makes it, started daemon by daemon so
the coordinator listens for beacons). Each attack is sent by hand and must be
refused, leave no trace a user could see, and be logged by the daemon; the
same message with the right key goes through, so a refusal is the key's doing.
docs/security.md maps each attack to its test.
"""

from __future__ import annotations

import json
import os
import socket
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq
from daemons.conftest import Daemons, clean_env, free_port, wait_for, weft

CLUSTER = f"attacks-{os.getpid()}"


def _key(path: Path) -> dict[str, str]:
    return tomllib.loads(path.read_text())


class Raw:
    """A DEALER as an attacker holds it: optional CURVE keys, envelopes packed by hand, a handshake monitor."""

    def __init__(self, endpoint: str, server_public: str | None, key: Path | None = None) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        # A refused handshake can leave no pipe to queue on: a blocking send
        # would wait for ever (it hung a suite run once).
        self.sock.sndtimeo = 2000
        if server_public is not None:
            own = _key(key) if key else dict(zip(("public", "secret"), (k.decode() for k in zmq.curve_keypair()), strict=True))
            self.sock.curve_serverkey = server_public.encode()
            self.sock.curve_publickey = own["public"].encode()
            self.sock.curve_secretkey = own["secret"].encode()
        self.monitor = self.sock.get_monitor_socket()
        self.sock.connect(endpoint)

    def call(self, op: str, body: Any, wait: float = 10.0) -> dict | None:
        """The reply's envelope, or None when nothing came back within `wait` seconds."""
        try:
            self.sock.send(msgpack.packb({"v": 1, "kind": "call", "id": 7, "op": op, "from": "mallory", "body": body}))
        except zmq.Again:
            return None  # not even queued: no connection would take it
        if not self.sock.poll(wait * 1000):
            return None
        return msgpack.unpackb(self.sock.recv(), raw=False)

    def refused(self, op: str, body: Any) -> bool:
        """Send a call; True once the handshake failed (within 10 s) and no answer came."""
        from zmq.utils.monitor import recv_monitor_message

        failed = (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                  zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, zmq.EVENT_DISCONNECTED)
        try:
            self.sock.send(msgpack.packb({"v": 1, "kind": "call", "id": 7, "op": op, "from": "mallory", "body": body}))
        except zmq.Again:
            pass  # not even queued (the handshake failed already): what it shows is the failure below
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.monitor.poll(200) and recv_monitor_message(self.monitor)["event"] in failed:
                return not self.sock.poll(200)
        return False

    def close(self) -> None:
        self.sock.disable_monitor()
        self.monitor.close(0)
        self.sock.close(0)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    from weft.cli.keys import make_cluster_keys

    tmp = tmp_path_factory.mktemp("attacks")
    keys = tmp / "keys"
    admin = make_cluster_keys(keys)
    beacon_port = free_port()
    daemons = Daemons(tmp)
    secure = ("--security", "curve", "--keys", str(keys))
    try:
        coord = daemons.start("coordinator", *secure, "--key", str(keys / "coordinator.secret"),
                              "--listen", f"tcp://127.0.0.1:{free_port()}", "--data-dir", str(tmp / "coordinator"),
                              "--cluster", CLUSTER, "--beacon-port", str(beacon_port))
        endpoint = daemons.ready_line(coord).split()[-1]
        logs = {"coordinator": Path(coord.err.name)}  # type: ignore[attr-defined]  (daemons log to stderr)
        nodes = {}
        for role in ("storage", "compute"):
            # A secure compute node sandboxes its jobs: the markers the admitted
            # jobs write in `tmp` must be shared with them (these tests are about
            # the wire; tests/cluster/test_isolation.py is about the sandbox).
            share = ("--share", str(tmp)) if role == "compute" else ()
            p = daemons.start(role, *secure, *share, "--coordinator", endpoint, "--no-beacon", "--node-id",
                              f"{role}-0", "--listen", f"tcp://127.0.0.1:{free_port()}", "--data-dir", str(tmp / role))
            nodes[role] = daemons.ready_line(p).split()[-1]
            logs[role] = Path(p.err.name)  # type: ignore[attr-defined]
        info = {"tmp": tmp, "keys": keys, "daemons": daemons, "coordinator": endpoint, **nodes, "admin": admin,
                "env": clean_env(WEFT_KEY=str(admin)), "logs": logs, "beacon_port": beacon_port,
                "cluster_public": _key(keys / "cluster.public")["public"]}
        from weft.actors.client import Client

        with Client(endpoint, timeout=10, key=admin) as client:
            info["client"] = client
            wait_for(lambda: _ready_nodes(info) >= {"storage-0", "compute-0"}, 30, "the nodes registered")
            yield info
    finally:
        daemons.stop()


def _nodes(c: dict) -> list[dict]:
    """What `weft nodes --json` lists (read with the admin's client: quicker than a CLI process per look)."""
    return c["client"].nodes()


def _ready_nodes(c: dict) -> set[str]:
    return {n["node"] for n in _nodes(c) if n["ready"]}


def _log(c: dict, role: str) -> str:
    return c["logs"][role].read_text()


def _user_key(c: dict, name: str, role: str = "user", allow: bool = True) -> Path:
    d = c["tmp"] / f"keys-{name}"
    if not (d / f"{name}.secret").exists():
        d.mkdir()
        (d / "cluster.public").write_text((c["keys"] / "cluster.public").read_text())
        assert weft("keys", "generate", str(d), "--role", role, "--name", name).returncode == 0
        if allow:
            p = weft("keys", "allow", str(d / f"{name}.public"), "-c", c["coordinator"], env=c["env"])
            assert p.returncode == 0, p.stderr
    return d / f"{name}.secret"


def _submit_body(marker: Path) -> dict:
    return {"jobs": [{"o": [], "cmd": ["sh", "-c", f"touch {marker}"]}]}


@pytest.fixture
def raw() -> Iterator[list[Raw]]:
    made: list[Raw] = []
    yield made
    for r in made:
        r.close()


def _raw(raw: list[Raw], *args: Any) -> Raw:
    r = Raw(*args)
    raw.append(r)
    return r


def test_a_submit_with_no_key_or_an_unknown_key_runs_nothing(cluster: dict, raw: list[Raw]) -> None:
    tmp = cluster["tmp"]
    # No CURVE at all: the handshake fails, nothing is answered.
    plain = _raw(raw, cluster["coordinator"], None)
    assert plain.refused("submit", _submit_body(tmp / "pwned-plain"))
    # CURVE with a key pair of the attacker's own: refused by the ZAP handler, and logged.
    unknown = _raw(raw, cluster["coordinator"], cluster["cluster_public"])
    assert unknown.refused("submit", _submit_body(tmp / "pwned-unknown"))
    wait_for(lambda: "is not on the allow-list" in _log(cluster, "coordinator"), 10, "the refusal logged")
    # The same message with the admin's key runs: the keys made the difference.
    admitted = _raw(raw, cluster["coordinator"], cluster["cluster_public"], cluster["admin"])
    reply = admitted.call("submit", _submit_body(tmp / "ran-admin"))
    assert reply is not None and reply["kind"] == "reply", reply
    wait_for(lambda: (tmp / "ran-admin").exists(), 30, "the admitted submit ran")
    assert not (tmp / "pwned-plain").exists() and not (tmp / "pwned-unknown").exists()


@pytest.mark.parametrize("who", ["user", "node"])
def test_a_start_straight_to_a_compute_node_is_forbidden(cluster: dict, raw: list[Raw], who: str) -> None:
    # A user key of the cluster's own, or a node key that is not the coordinator's.
    key = _user_key(cluster, "eve") if who == "user" else cluster["keys"] / "node.secret"
    marker = cluster["tmp"] / f"pwned-start-{who}"
    r = _raw(raw, cluster["compute"], cluster["cluster_public"], key)
    body = {"job": f"jevil-{who}", "spec": {"o": [], "cmd": ["sh", "-c", f"touch {marker}"]},
            "inputs": {}, "outputs": {}, "token": 5}
    reply = r.call("start", body)
    assert reply is not None and reply["kind"] == "error", reply
    assert reply["body"]["code"] == "forbidden" and f"{who} key" in reply["body"]["message"]
    # Logged (refusals are rate-limited to a line per 5 s: the first of the two cases says it).
    wait_for(lambda: "refused 'start' from mallory (" in _log(cluster, "compute"), 10, "the refusal logged")
    assert not marker.exists()


def test_a_user_cannot_delete_or_overwrite_a_finished_object(cluster: dict, raw: list[Raw]) -> None:
    p = weft("submit", "--json", "--wait", "-c", cluster["coordinator"], "--", "sh", "-c", "echo original",
             env=cluster["env"])
    assert p.returncode == 0, p.stderr
    job = json.loads(p.stdout)["jobs"][0]
    name = job["outputs"][0]
    got = weft("get", name, "-c", cluster["coordinator"], env=cluster["env"])
    assert got.returncode == 0 and got.stdout == "original\n", got.stderr
    r = _raw(raw, cluster["storage"], cluster["cluster_public"], _user_key(cluster, "eve"))
    for op, body in (("delete", {"names": [name]}), ("put", {"name": name, "data": b"forged", "token": 0})):
        reply = r.call(op, body)
        assert reply is not None and reply["kind"] == "error", (op, reply)
        assert reply["body"]["code"] == "forbidden", (op, reply)
    wait_for(lambda: "refused 'delete' from mallory (user:eve)" in _log(cluster, "storage"), 10, "the refusal logged")
    again = weft("get", name, "-c", cluster["coordinator"], env=cluster["env"])
    assert again.returncode == 0 and again.stdout == "original\n", again.stderr


def test_a_huge_epoch_from_a_non_coordinator_key_does_not_stop_scheduling(cluster: dict, raw: list[Raw]) -> None:
    for key in (_user_key(cluster, "eve"), cluster["keys"] / "node.secret"):
        r = _raw(raw, cluster["compute"], cluster["cluster_public"], key)
        reply = r.call("ping", {"epoch": 1 << 60})
        assert reply is not None and reply["kind"] == "reply", reply
        assert reply["body"]["epoch"] < 1 << 60  # not taken
    wait_for(lambda: "ignored epoch 1152921504606846976 in a ping from mallory" in _log(cluster, "compute"), 10,
             "the forged epoch logged")
    marker = cluster["tmp"] / "after-epoch"
    p = weft("submit", "--wait", "-c", cluster["coordinator"], "--", "touch", str(marker), env=cluster["env"])
    assert p.returncode == 0, p.stderr
    assert marker.exists()
    assert _ready_nodes(cluster) >= {"compute-0", "storage-0"}


def test_a_hello_without_a_node_key_adds_no_node(cluster: dict, raw: list[Raw]) -> None:
    fake = {"role": "compute", "node": "fake-hello", "endpoint": f"tcp://127.0.0.1:{free_port()}", "inc": "x"}
    plain = _raw(raw, cluster["coordinator"], None)
    assert plain.refused("hello", fake)
    user = _raw(raw, cluster["coordinator"], cluster["cluster_public"], _user_key(cluster, "eve"))
    reply = user.call("hello", fake)
    assert reply is not None and reply["body"]["code"] == "forbidden", reply
    wait_for(lambda: "refused 'hello' from mallory (user:eve)" in _log(cluster, "coordinator"), 10, "logged")
    assert "fake-hello" not in {n["node"] for n in _nodes(cluster)}


def test_a_forged_beacon_announces_a_node_that_never_gets_work(cluster: dict) -> None:
    # The fake node: a CURVE server with a key pair of its own (it has no cluster.secret).
    ctx = zmq.Context.instance()
    fake = ctx.socket(zmq.ROUTER)
    fake.linger = 0
    public, secret = zmq.curve_keypair()
    fake.curve_server, fake.curve_publickey, fake.curve_secretkey = True, public, secret
    port = fake.bind_to_random_port("tcp://127.0.0.1")
    packet = msgpack.packb({"weft": 1, "c": CLUSTER, "r": "compute", "n": "fake-beacon",
                            "e": f"tcp://127.0.0.1:{port}"})
    try:
        seen: list[dict] = []  # every listing of the fake node
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            deadline = time.monotonic() + 20
            # Heard, tried (its handshake fails: it does not hold the cluster key) and dropped.
            while "compute fake-beacon lost" not in _log(cluster, "coordinator") and time.monotonic() < deadline:
                udp.sendto(packet, ("127.255.255.255", cluster["beacon_port"]))
                seen += [n for n in _nodes(cluster) if n["node"] == "fake-beacon"]
                time.sleep(0.2)
        assert "compute fake-beacon lost" in _log(cluster, "coordinator"), "the beacon was never heard"
        assert all(not n["ready"] for n in seen), seen  # listed at most as not usable
        marker = cluster["tmp"] / "after-beacon"
        # Jobs keep going to the real node; none reaches the fake.
        p = weft("submit", "--wait", "-c", cluster["coordinator"], "--", "touch", str(marker), env=cluster["env"])
        assert p.returncode == 0 and marker.exists(), p.stderr
        assert not fake.poll(0)  # not one message got through its handshake
        assert "fake-beacon" not in _ready_nodes(cluster)
    finally:
        fake.close(0)


def test_a_node_whose_key_is_revoked_gets_no_more_work_and_weft_nodes_says_why(cluster: dict) -> None:
    ep, env, client = cluster["coordinator"], cluster["env"], cluster["client"]
    # A compute node with a key of its own (as deploy/ansible gives each host), admitted by the admin.
    d = cluster["tmp"] / "keys-compute-x"
    d.mkdir()
    for f in ("cluster.secret", "cluster.public", "allow"):
        (d / f).write_text((cluster["keys"] / f).read_text())
    from weft.bus.curve import generate, write_identity

    write_identity(d, generate("compute-x", "node"), cluster_public=cluster["cluster_public"])  # `weft keys generate`
    p = weft("keys", "allow", str(d / "compute-x.public"), "-c", ep, env=env)
    assert p.returncode == 0, p.stderr
    daemons: Daemons = cluster["daemons"]
    x = daemons.start("compute", "--security", "curve", "--keys", str(d), "--key", str(d / "compute-x.secret"),
                      "--coordinator", ep, "--no-beacon", "--node-id", "compute-x", "--listen",
                      f"tcp://127.0.0.1:{free_port()}", "--data-dir", str(cluster["tmp"] / "compute-x"))
    daemons.ready_line(x)
    wait_for(lambda: "compute-x" in _ready_nodes(cluster), 30, "compute-x registered")
    p = weft("keys", "revoke", "compute-x", "-c", ep, env=env)
    assert p.returncode == 0, p.stderr
    (listed,) = [n for n in _nodes(cluster) if n["node"] == "compute-x"]
    assert not listed["ready"] and "'compute-x' was revoked" in listed["revoked"]
    text = weft("nodes", "-c", ep, env=env).stdout
    assert "revoked" in text and "compute: compute-x" not in text and "compute compute-x: its key" in text, text
    # With the only other compute node drained, a new job has nowhere to go: compute-x must not take it.
    client.drain("compute-0")  # what `weft node drain` calls
    try:
        job = client.submit(["sh", "-c", "echo revoke-probe"])
        time.sleep(2)  # long enough for a dispatch round or ten
        assert client.status([job])[0]["state"] in ("waiting", "runnable"), client.status([job])
    finally:
        client.drain("compute-0", undo=True)
    assert client.wait([job], timeout=30)[0]["state"] == "succeeded"
    x.terminate()
    x.wait(20)


def test_last_a_coordinator_fenced_by_a_newer_epoch_says_it_stopped_scheduling_and_why(cluster: dict,
                                                                                      raw: list[Raw]) -> None:
    # Last in the module: it stops the cluster's scheduling. What a newer coordinator
    # does (with the coordinator's own key): a ping carrying a higher epoch.
    assert json.loads(weft("stats", "--json", "-c", cluster["coordinator"], env=cluster["env"]).stdout)[
        "scheduling"] == "on"
    r = _raw(raw, cluster["compute"], cluster["cluster_public"], cluster["keys"] / "coordinator.secret")
    reply = r.call("ping", {"epoch": 1 << 60})
    assert reply is not None and reply["body"]["epoch"] == 1 << 60
    cluster["client"].submit(["sh", "-c", "echo fence-probe"])  # a new job (ids are hashes of specs): its start is answered `fenced`
    wait_for(lambda: cluster["client"].stats()["scheduling"] != "on", 30, "the coordinator noticed")
    p = weft("stats", "-c", cluster["coordinator"], env=cluster["env"])
    assert p.returncode == 0, p.stderr
    (line,) = [ln for ln in p.stdout.splitlines() if ln.startswith("scheduling")]
    assert "stopped: " in line and "a newer coordinator took over" in line and "'" in line, line
