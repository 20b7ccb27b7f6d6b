"""CurveZMQ for weft's sockets: keys applied to sockets, and the ZAP handler
(the key files and the allow-list themselves: bus/keyfiles.py).

The trust model (docs/security.md). Every daemon of a cluster serves with ONE
server key pair, the cluster key (`cluster.secret`; clients need only
`cluster.public`), so a client can reach any endpoint it is handed (a storage
node named in a start message) without a per-node key lookup. Who may talk is
decided on the other side: each party connects with its OWN key pair (a node,
an admin or a user key), and a daemon admits a connection only if that public
key is on the cluster's allow-list, where it also has a role and a name. The
ZAP handler answers libzmq's question "may this key connect?" and gives the
connection a User-Id `ROLE:NAME`, which every message then carries (the
Server reads it per message; see bus.rpc).

Files (text, TOML): `NAME.secret` (name, role, public, secret, and the
cluster's public key when known) is one identity, kept secret; `NAME.public`
(name, role, public) is what an admin adds to the allow-list; `allow` is one
line per admitted key: `PUBLIC ROLE NAME`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio
import zmq
from zmq.utils import z85

from .errors import BusError
from .keyfiles import (  # noqa: F401  (key files live there; importers of curve keep these names)
    _Z85_KEY,
    KEY_ROLES,
    AllowList,
    Identity,
    KeyFileError,
    check_name,
    generate,
    read_identity,
    write_identity,
)
from .ratelog import RateLimitedLog
from .zsock import ZSocket, context

log = logging.getLogger("weft.bus")

# What a CURVE handshake tells a client (socket monitor): refused, or accepted
# (again). Not FAILED_NO_DETAIL: a connection dropped mid-handshake says that
# too, and must stay an ordinary lost connection.
HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_SUCCEEDED)
ZAP_ENDPOINT = "inproc://zeromq.zap.01"


@dataclass
class Security:
    """How one process's sockets are secured. `server` (the cluster key pair) and `allow` are set
    on daemons, which serve; every party has `identity` (its own key) and the cluster's public key."""

    identity: Identity
    cluster_public: str
    server_secret: str | None = None
    allow: AllowList | None = None

    def apply_server(self, sock: zmq.Socket) -> None:
        assert self.server_secret is not None, "a socket that serves needs the cluster's secret key"
        sock.curve_server = True
        sock.curve_publickey = self.cluster_public.encode()
        sock.curve_secretkey = self.server_secret.encode()
        sock.setsockopt(zmq.ZAP_DOMAIN, b"weft")

    def apply_client(self, sock: zmq.Socket) -> None:
        sock.curve_serverkey = self.cluster_public.encode()
        sock.curve_publickey = self.identity.public.encode()
        sock.curve_secretkey = (self.identity.secret or "").encode()


def load_client(key_file: Path, cluster_public: str | None = None) -> Security:
    """A client's security from its key file; the cluster's public key from the file itself,
    `cluster_public`, or `cluster.public` beside the key file."""
    ident = read_identity(key_file)
    cluster = cluster_public or ident.cluster_public
    if cluster is None:
        beside = key_file.parent / "cluster.public"
        if beside.exists():
            cluster = read_identity(beside, secret=False).public
    if cluster is None:
        raise KeyFileError(f"key file {key_file} does not name the cluster's public key (cluster_public), and there "
                        f"is no cluster.public beside it")
    return Security(ident, cluster)


def load_daemon(keys_dir: Path, key_file: Path | None = None) -> Security:
    """A daemon's security from its keys directory: `cluster.secret`, `allow`, and its own key
    (`key_file`, default `node.secret` there)."""
    server = read_identity(keys_dir / "cluster.secret")
    own = read_identity(key_file or keys_dir / "node.secret")
    if own.role != "node":
        raise KeyFileError(f"a daemon needs a node key; {key_file or keys_dir / 'node.secret'} is a {own.role} key")
    allow = AllowList(keys_dir / "allow")
    allow.load()
    return Security(own, server.public, server.secret, allow)


def admission(allow: AllowList, may: Callable[[str, str], bool],
              live: Callable[[str], bool] | None = None) -> Callable[[str, str], bool]:
    """A secure server's per-message check: the caller's key is still on the allow-list (or, `live`, a
    running job's credential still is: the coordinator), and its role may run the op.

    ZAP admits a key once, at connect; a connection made before `weft keys
    revoke` would keep working without this. The cost per message is one
    frozenset lookup of the User-Id string libzmq already hands us (about 50 ns
    in a closure; a class with __call__ cost 400: docs/security.md), and no
    per-connection state. Revoking is by name: a connection is refused while no
    key of its `ROLE:NAME` is admitted.
    """
    if live is None:
        def check(op: str, user: str) -> bool:
            return user in allow.users and may(op, user)
    else:
        def check(op: str, user: str) -> bool:
            return (user in allow.users or live(user)) and may(op, user)

    check.may = may  # type: ignore[attr-defined]  # for `forbidden`'s reason
    return check


def forbidden(server_role: str, op: str, user: str, access: object) -> BusError:
    """What a caller refused by `access` is told, in one line: a revoked key or an ended job's
    credential (its role may run the op), or an op beyond its role."""
    may = getattr(access, "may", None)
    role = user.partition(":")[0]
    if may is not None and may(op, user):
        if role == JOB_ROLE:
            return BusError(f"{op!r} refused: the credential {user} ended with its job's attempt", code="forbidden")
        return BusError(f"{op!r} refused: the key {user} was revoked (it is no longer on the cluster's allow-list)",
                        code="forbidden")
    if role == JOB_ROLE:
        return BusError(f"{op!r} on this {server_role} is not allowed for a job's credential ({user}): a job may "
                        "submit children and read its own root's jobs only", code="forbidden")
    return BusError(f"{op!r} on this {server_role} is not allowed for a {role} key ({user})", code="forbidden")


# A running job's credential (docs/security.md, "A job's credential"): the
# compute node mints a key pair per command task on a secure cluster, tells the
# coordinator its public key in the start answer, and gives the command
# `PUBLIC SECRET CLUSTER-PUBLIC` in this variable; a Client() in the job finds it.
JOB_CREDENTIAL_ENV = "WEFT_JOB_CREDENTIAL"
JOB_ROLE = "job"


def mint_job_credential(cluster_public: str) -> tuple[str, str]:
    """(public key, the variable's value) for one task: about 30 us, on the compute node."""
    public, secret = zmq.curve_keypair()
    return public.decode(), f"{public.decode()} {secret.decode()} {cluster_public}"


def job_client(value: str) -> Security:
    """A client's security from a job credential (the variable's value); KeyFileError if malformed."""
    parts = value.split()
    if len(parts) != 3 or not all(_Z85_KEY.fullmatch(k) for k in parts):
        raise KeyFileError(f"${JOB_CREDENTIAL_ENV} is not a job credential (expected three Z85 keys)")
    return Security(Identity(JOB_ROLE, JOB_ROLE, parts[0], parts[1]), parts[2])


def refused(endpoint: str, with_key: bool) -> BusError:
    """What a client is told when a handshake with `endpoint` failed."""
    if with_key:
        message = (f"{endpoint} refused this client's key: it is not on the cluster's allow-list, or the "
                   "cluster's public key is not the one this key file names")
    else:
        message = f"{endpoint} is a secure cluster (CurveZMQ): give a key file with --key FILE or WEFT_KEY"
    return BusError(message, code="auth-failed")


class ZapHandler:
    """Answers libzmq's ZAP requests (RFC 27) for this process's sockets from the allow-list.

    One per process (libzmq has one ZAP endpoint per context); it must be
    bound before a socket that serves with CURVE accepts connections.
    """

    def __init__(self, allow: AllowList, extra: Callable[[str], str | None] | None = None) -> None:
        self.allow = allow
        # Keys not on the list that this daemon admits anyway, with their User-Id (the coordinator's job credentials).
        self.extra = extra
        self.refused = 0
        self._badlog = RateLimitedLog(log)
        self._zs: ZSocket | None = None

    def bind(self) -> None:
        sock = context().socket(zmq.REP)
        try:
            sock.bind(ZAP_ENDPOINT)
        except zmq.ZMQError:
            sock.close(0)
            raise KeyFileError("another ZAP handler is bound in this process") from None
        self._zs = ZSocket(sock, linger_ms=0)

    def close(self) -> None:
        if self._zs is not None:
            self._zs.close()

    def answer(self, frames: list[bytes]) -> list[bytes]:
        """The reply to one request: 200 with `ROLE:NAME` as User-Id, or 400."""
        version, request_id = frames[0], frames[1]
        mechanism = frames[5] if len(frames) > 5 else b""
        address = frames[3].decode(errors="replace") if len(frames) > 3 else "?"
        if version != b"1.0" or mechanism != b"CURVE" or len(frames) < 7 or len(frames[6]) != 32:
            self.refused += 1
            return [b"1.0", request_id, b"400", b"CURVE only", b"", b""]
        public = z85.encode(frames[6]).decode()
        who = self.allow.lookup(public)
        if who is None and self.extra is not None:
            user = self.extra(public)
            if user is not None:
                return [b"1.0", request_id, b"200", b"OK", user.encode(), b""]
        if who is None:
            self.refused += 1
            self._badlog.warning("refused a connection from %s: key %s is not on the allow-list", address, public)
            return [b"1.0", request_id, b"400", b"key not allowed", b"", b""]
        role, name = who
        return [b"1.0", request_id, b"200", b"OK", f"{role}:{name}".encode(), b""]

    async def serve(self) -> None:
        assert self._zs is not None, "bind() first"
        zs = self._zs
        try:
            while True:
                try:
                    frames = await zs.recv()
                except trio.ClosedResourceError:
                    return
                try:
                    reply = self.answer(frames)
                except Exception as e:  # a daemon never dies on input
                    self._badlog.warning("malformed ZAP request: %s", e)
                    reply = [b"1.0", frames[1] if len(frames) > 1 else b"", b"500", b"internal", b"", b""]
                await zs.send(reply)
        finally:
            zs.close()  # frees the process's one ZAP endpoint
