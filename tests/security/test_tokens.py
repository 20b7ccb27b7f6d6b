"""The per-message rules of a secure server, in process: revoked keys, job credentials, read tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from weft.actors.storage import readtoken
from weft.bus.curve import AllowList, Identity, admission, forbidden, generate
from weft.bus.errors import BusError
from weft.protocol.access import allowed


def _allow(tmp_path: Path, *idents: Identity) -> AllowList:
    allow = AllowList(tmp_path / "allow")
    allow.path.write_text("")
    allow.load()
    for i in idents:
        allow.add(i)
    return allow


def test_a_revoked_name_is_refused_per_message_and_told_why(tmp_path: Path) -> None:
    allow = _allow(tmp_path, generate("alice", "user"), generate("n1", "node"))
    check = admission(allow, lambda op, user: allowed("coordinator", op, user))
    assert check("status", "user:alice") and not check("pause", "user:alice")
    assert "not allowed for a user key" in forbidden("coordinator", "pause", "user:alice", check).message
    allow.remove("alice")
    assert not check("status", "user:alice") and check("ping", "node:n1")
    assert "the key user:alice was revoked" in forbidden("coordinator", "status", "user:alice", check).message
    allow.add(generate("alice", "user"))  # by name: a new key of that name readmits it
    assert check("status", "user:alice")


def test_a_job_credential_passes_while_live_and_only_for_its_ops(tmp_path: Path) -> None:
    allow = _allow(tmp_path)
    live: set[str] = {"job:j1@3"}
    check = admission(allow, lambda op, user: allowed("coordinator", op, user), live.__contains__)
    assert check("submit", "job:j1@3") and check("locate", "job:j1@3")
    assert not check("pause", "job:j1@3") and not check("jobs", "job:j1@3")
    assert "not allowed for a job's credential" in forbidden("coordinator", "pause", "job:j1@3", check).message
    live.clear()
    assert not check("submit", "job:j1@3")
    assert "ended with its job's attempt" in forbidden("coordinator", "submit", "job:j1@3", check).message
    # No other daemon admits a job's ops at all.
    assert not allowed("storage", "read", "job:j1@3") and not allowed("compute", "start", "job:j1@3")


@pytest.mark.parametrize("user, name, made_ago, why", [
    ("user:alice", "j/stdout", 0, None),
    ("user:bob", "j/stdout", 0, "not the coordinator's for this key and object"),
    ("user:alice", "k/stdout", 0, "not the coordinator's for this key and object"),
    ("user:alice", "j/stdout", 2 * readtoken.LIFETIME, "expired"),
])
def test_a_read_token_is_for_one_key_one_object_and_an_hour(user: str, name: str, made_ago: float,
                                                           why: str | None) -> None:
    import time

    key = readtoken.key_of("cluster-secret-key")
    token = readtoken.make(key, "user:alice", "j/stdout", now=time.time() - made_ago)
    if why is None:
        readtoken.check(key, user, name, {"rt": token}, "read")
        return
    with pytest.raises(BusError) as e:
        readtoken.check(key, user, name, {"rt": token}, "read")
    assert e.value.code == "forbidden" and why in e.value.message
    with pytest.raises(BusError, match="carries no read token"):
        readtoken.check(key, user, name, {}, "read")
    with pytest.raises(BusError, match="not the coordinator's"):  # a key from another cluster
        readtoken.check(readtoken.key_of("other"), "user:alice", "j/stdout", {"rt": token}, "read")
