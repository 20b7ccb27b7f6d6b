"""Job owners and user uploads on a secure cluster (`weft up --secure`), as users would meet them:
alice's job is hers (bob is refused, an admin is not), and a user key stores content objects only,
their bytes checked against their names."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from .conftest import Daemons, assert_one_line_error, clean_env, free_port, weft


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    from weft.actors.client import Client
    from weft.bus.curve import generate, read_identity, write_identity
    from weft.protocol.access import KeyChange

    tmp = tmp_path_factory.mktemp("owners")
    daemons = Daemons(tmp)
    clients: list[Client] = []
    try:
        up = daemons.start("up", "--secure", "--json", "--compute", "1", "--storage", "1", "--slots", "2",
                           "--data-dir", str(tmp / "data"), "--listen", f"tcp://127.0.0.1:{free_port()}")
        info = json.loads(daemons.ready_line(up))
        info["tmp"] = tmp
        ep, keys = info["coordinator"], Path(info["key"]).parent
        cluster_public = read_identity(keys / "cluster.public", secret=False).public
        info["admin"] = clean_env(WEFT_KEY=info["key"])
        admin = Client(ep, key=info["key"])
        clients.append(admin)
        info["admin_client"] = admin
        for name in ("alice", "bob"):  # as `weft keys generate` and `weft keys allow` make them
            ident = generate(name, "user")
            secret, _ = write_identity(tmp / f"user-{name}", ident, cluster_public=cluster_public)
            admin.call("keys", KeyChange("allow", name, ident.public, "user").to_wire())
            info[name], info[f"{name}_key"] = clean_env(WEFT_KEY=str(secret)), secret
            info[f"{name}_client"] = Client(ep, key=secret)
            clients.append(info[f"{name}_client"])
        yield info
    finally:
        for c in clients:
            c.close()
        daemons.stop()


def cli(cluster: dict, who: str, *args: str):  # noqa: ANN201
    return weft(*args[:1], "-c", cluster["coordinator"], *args[1:], env=cluster[who])


def forbidden(call, *parts: str) -> None:  # noqa: ANN001
    from weft.bus.errors import BusError

    with pytest.raises(BusError) as e:
        call()
    assert e.value.code == "forbidden", e.value
    for part in parts:
        assert part in e.value.message, (part, e.value.message)


def test_a_users_job_is_its_own(cluster: dict) -> None:
    alice, bob, admin = cluster["alice_client"], cluster["bob_client"], cluster["admin_client"]
    p = cli(cluster, "alice", "submit", "--name", "alices-job", "--wait", "--", "sh", "-c", "echo alice-output")
    assert p.returncode == 0 and p.stdout.strip().splitlines()[-1] == "alice-output", p.stderr
    assert alice.status(["alices-job"])[0]["owner"] == "user:alice"
    assert alice.logs("alices-job").strip() == b"alice-output"
    # bob: refused, one line on the CLI, exit 2, naming the op and the role.
    assert_one_line_error(cli(cluster, "bob", "status", "alices-job"), "'status'", "user key (user:bob)")
    assert_one_line_error(cli(cluster, "bob", "get", "alices-job/stdout"), "'locate'", "user key (user:bob)")
    forbidden(lambda: bob.logs("alices-job"), "'logs'", "another user's job")
    assert "alices-job" not in {j["job"] for j in bob.jobs()}
    assert admin.status(["alices-job"])[0]["owner"] == "user:alice"
    # The admin sees every job with its owner in `weft jobs`.
    rows = cli(cluster, "admin", "jobs").stdout.splitlines()
    assert rows[0].split()[6] == "OWNER"
    assert any(r.split()[0] == "alices-job" and "user:alice" in r.split() for r in rows[1:])


def test_bob_cannot_cancel_alices_job_and_an_admin_can(cluster: dict) -> None:
    from weft.actors.model import JobSpec

    alice, bob, admin = cluster["alice_client"], cluster["bob_client"], cluster["admin_client"]
    alice.submit_specs([JobSpec(command=["sleep", "60"], name="alices-sleeper")])
    assert_one_line_error(cli(cluster, "bob", "cancel", "alices-sleeper"), "'cancel'", "user key (user:bob)")
    forbidden(lambda: bob.cancel(["alices-sleeper"]), "'cancel'")
    assert alice.status(["alices-sleeper"])[0]["state"] not in ("cancelled", "cancelling")
    admin.cancel(["alices-sleeper"])
    assert alice.status(["alices-sleeper"])[0]["state"] in ("cancelled", "cancelling")


def test_a_user_puts_content_and_gets_it_back(cluster: dict, tmp_path: Path) -> None:
    f = tmp_path / "data.bin"
    f.write_bytes(b"uploaded by alice\n" * 5000)  # past the storage's inline size: streamed
    p = cli(cluster, "alice", "put", str(f))
    assert p.returncode == 0, p.stderr
    name = p.stdout.strip()
    assert name == "sha256-" + hashlib.sha256(f.read_bytes()).hexdigest()
    out = tmp_path / "back.bin"
    p = cli(cluster, "alice", "get", name, "-o", str(out))
    assert p.returncode == 0 and out.read_bytes() == f.read_bytes(), p.stderr


async def test_storage_refuses_a_users_forged_or_non_content_write(cluster: dict) -> None:
    from weft.bus.curve import load_client
    from weft.bus.errors import BusError
    from weft.bus.peers import connect
    from weft.protocol.objects import Create, Finish, ObjectRef, Populate, Put

    alice = load_client(cluster["alice_key"])
    real = hashlib.sha256(b"the real bytes").hexdigest()
    name = f"sha256-{real}/content"
    async with connect(cluster["storage"][0], "alice-raw", timeout=5, security=alice) as peer:
        with pytest.raises(BusError) as e:  # small: one put
            await peer.call("put", Put(name, b"forged bytes", 0).to_wire())
        assert "hash to sha256-" in e.value.message and "nothing was kept" in e.value.message
        with pytest.raises(BusError) as e:  # streamed: create, populate, finish
            await peer.call("create", Create(name, 0).to_wire())
            await peer.call("populate", Populate(name, b"forged, in chunks", 0).to_wire())
            await peer.call("finish", Finish(name, 0).to_wire())
        assert "not to its name" in e.value.message
        with pytest.raises(BusError) as e:
            await peer.call("stat", ObjectRef(name).to_wire())
        assert e.value.code == "missing"  # nothing kept
        with pytest.raises(BusError) as e:  # a job's output name: never a user's to write
            await peer.call("put", Put("alices-job/stdout", b"x", 0).to_wire())
        assert e.value.code == "forbidden" and "user key (user:alice)" in e.value.message


def test_a_secret_reaches_the_job_and_is_written_nowhere(cluster: dict, tmp_path: Path) -> None:
    value = "s3cr3t-Value-4711"
    (tmp_path / "token").write_text(value + "\n")
    # The job prints a hash of what it got: its command holds no secret, its output neither.
    p = cli(cluster, "alice", "submit", "--name", "with-secret", "--secret", "API_TOKEN=hidden-inline",
            "--secret", f"FILE_TOKEN=@{tmp_path / 'token'}", "--wait", "--",
            "sh", "-c", 'printf %s "$FILE_TOKEN" | sha256sum; echo "inline ${#API_TOKEN}"')
    assert p.returncode == 0, p.stderr
    out = p.stdout.strip().splitlines()
    assert out[-2].split()[0] == hashlib.sha256(value.encode()).hexdigest() and out[-1] == "inline 13"
    shown = cli(cluster, "admin", "status", "with-secret", "--json").stdout
    assert json.loads(shown)["state"] == "succeeded"
    logs = cli(cluster, "alice", "logs", "with-secret").stdout
    for text in (shown, logs):
        assert value not in text and "hidden-inline" not in text
    # Nothing under the cluster's data directory (journal and its WAL, daemon logs, task
    # directories and task logs, storage) holds either value.
    data = Path(cluster["tmp"]) / "data"
    files = [f for f in data.rglob("*") if f.is_file()]
    assert any(f.name.startswith("journal.sqlite") for f in files)
    for f in files:
        raw = f.read_bytes()
        assert value.encode() not in raw and b"hidden-inline" not in raw, f


async def test_a_user_reads_storage_only_with_the_coordinators_token_for_its_own_objects(cluster: dict) -> None:
    from weft.bus.curve import load_client
    from weft.bus.errors import BusError
    from weft.bus.peers import connect
    from weft.protocol.objects import Read

    # Big enough that `weft get` reads it from storage (not inline in the coordinator's answer).
    p = cli(cluster, "alice", "submit", "--name", "alices-big", "--wait", "--", "sh", "-c",
            "head -c 200000 /dev/zero | tr '\\0' a")
    assert p.returncode == 0 and p.stdout.strip().splitlines()[-1:] == ["a" * 200000], (p.returncode, p.stdout[:300], p.stderr)
    [view] = await trio.to_thread.run_sync(cluster["alice_client"].status, ["alices-big"])
    name = f"{view['job']}/stdout"
    where = await trio.to_thread.run_sync(cluster["alice_client"].locate, name)
    assert "data" not in where and where["rt"]
    read = Read(name, 0, 10).to_wire()
    async with connect(cluster["storage"][0], "bob-raw", timeout=5, security=load_client(cluster["bob_key"])) as bob:
        for body, why in ((read, "carries no read token"),
                          ({**read, "rt": "9999999999.00"}, "not the coordinator's for this key and object"),
                          ({**read, "rt": where["rt"]}, "not the coordinator's for this key and object")):
            with pytest.raises(BusError) as e:
                await bob.call("read", body)
            assert e.value.code == "forbidden" and why in e.value.message and "user key (user:bob)" in e.value.message
        with pytest.raises(BusError) as e:
            await bob.call("stat", {"name": name})
        assert e.value.code == "forbidden"
    async with connect(cluster["storage"][0], "alice-raw", timeout=5,
                       security=load_client(cluster["alice_key"])) as alice:
        assert bytes((await alice.call("read", {**read, "rt": where["rt"]}))["data"]) == b"a" * 10
    # Admin and node keys are not asked for one.
    assert await trio.to_thread.run_sync(cluster["admin_client"].get, name) == b"a" * 200000


def test_weft_events_shows_a_user_only_the_ends_of_their_own_jobs(cluster: dict) -> None:
    for who in ("alice", "bob"):
        p = cli(cluster, who, "submit", "--name", f"{who}-event-job", "--wait", "--", "true")
        assert p.returncode == 0, p.stderr

    def ends(who: str) -> set[str]:
        p = cli(cluster, who, "events", "--json")
        assert p.returncode == 0, p.stderr
        return {json.loads(line)["job"] for line in p.stdout.splitlines()}

    alice, bob, admin = ends("alice"), ends("bob"), ends("admin")
    assert "alice-event-job" in alice and "bob-event-job" not in alice
    assert "bob-event-job" in bob and "alice-event-job" not in bob
    assert {"alice-event-job", "bob-event-job"} <= admin
