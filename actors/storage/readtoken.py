"""Read tokens: storage reads by `user` keys, vouched for by the coordinator (docs/security.md).

A storage node knows objects, not jobs or owners. So when the coordinator
answers a `user` key's `locate` (having checked the key may read the
object: owners.check_object), it adds a token `EXPIRY.MAC`, an HMAC of (the
key's User-Id, the object's name, the expiry) under a key derived from the
cluster's secret key, which every daemon of the cluster holds and no client
does. A storage node answers `read` and `stat` from a `user` key only with a
valid token for that key and name, or for a content object (`sha256-.../content`:
readable by whoever knows its hash). Node and admin keys are not checked: the
data path every job uses does no HMAC. Tokens last an hour (a long download
reads many times with one); the daemons' clocks must agree to about that.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from weft.bus.errors import BusError

LIFETIME = 3600.0
FIELD = "rt"  # in a locate reply, and in the read/stat body a client sends storage


def key_of(cluster_secret: str) -> bytes:
    """The signing key: derived, so the cluster's CURVE key itself signs nothing."""
    return hashlib.sha256(b"weft read token\0" + cluster_secret.encode()).digest()


def _mac(key: bytes, user: str, name: str, expiry: int) -> str:
    return hmac.new(key, f"{user}\n{name}\n{expiry}".encode(), hashlib.sha256).hexdigest()[:32]


def make(key: bytes, user: str, name: str, now: float | None = None) -> str:
    expiry = int((now or time.time()) + LIFETIME)
    return f"{expiry}.{_mac(key, user, name, expiry)}"


def check(key: bytes, user: str, name: str, body: Any, op: str) -> None:
    """Nothing, or a `forbidden` BusError in one line: a user key reads an object only with a token for it."""
    token = body.get(FIELD) if type(body) is dict else None
    why = "it carries no read token (get one from the coordinator: weft get / Client.get)"
    if type(token) is str:
        expiry, _, mac = token.partition(".")
        if not expiry.isdigit() or not hmac.compare_digest(mac, _mac(key, user, name, int(expiry))):
            why = "its read token is not the coordinator's for this key and object"
        elif int(expiry) < time.time():
            why = "its read token expired (locate it again)"
        else:
            return
    raise BusError(f"{op!r} of object {name} is not allowed for a user key ({user}): {why}", code="forbidden")
