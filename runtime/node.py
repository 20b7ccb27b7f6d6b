"""The runtime every daemon shares: a server, peers, an event queue, discovery.

A role subclasses `Node`, registers its ops in `register()`, starts its
background work in `main()` and tidies up in `shutdown()`. The runtime adds
the ops every actor answers: `ping`, `poll` and `info`. It announces the node
by UDP beacon, or, with a static coordinator endpoint, by posting `hello` to
it; both repeat, so a coordinator that restarts learns the node again.
"""

from __future__ import annotations

import logging
import secrets
import signal
from functools import partial
from pathlib import Path
from typing import Any

import trio

from weft.bus.codec import DEFAULT_MAX_MESSAGE
from weft.bus.curve import AllowList, Identity, KeyFileError, Security, ZapHandler, admission
from weft.bus.errors import BusError
from weft.bus.events import EventQueue
from weft.bus.peers import PeerPool
from weft.bus.ratelog import RateLimitedLog
from weft.bus.rpc import CallContext, Server
from weft.protocol.access import ADMIN, COORDINATOR, KeyChange, allowed, caller_class
from weft.protocol.record import record

from .address import advertised, beacon_bind
from .settings import DEFAULT_BEACON_ADDR, DEFAULT_BEACON_PORT, DEFAULT_LISTEN

log = logging.getLogger("weft.bus")


@record(slots=False)
class NodeConfig:
    listen: str = DEFAULT_LISTEN
    # What other hosts connect to (None: see weft.runtime.address.advertised).
    advertise: str | None = None
    node_id: str | None = None
    data_dir: Path | None = None
    beacon: bool = True
    beacon_addr: str = DEFAULT_BEACON_ADDR
    beacon_port: int = DEFAULT_BEACON_PORT
    beacon_interval: float = 1.0
    cluster: str = "default"
    coordinator: str | None = None
    hello_interval: float = 1.0
    max_concurrent: int = 256
    max_message: int = DEFAULT_MAX_MESSAGE
    call_timeout: float = 10.0
    event_window: int = 100_000
    # CurveZMQ (weft.bus.curve): None serves and calls in the clear. The
    # settings it is loaded from (weft.runtime.daemon.security):
    security: Security | None = None
    security_mode: str = "none"
    keys_dir: Path | None = None
    key_file: Path | None = None
    insecure: bool = False
    # HOST:PORT of the Prometheus endpoint (weft.runtime.metrics), and of the
    # coordinator's web dashboard (weft.dashboard); None: not served.
    metrics: str | None = None
    http: str | None = None
    http_tokens: Path | None = None
    http_cert: Path | None = None  # with http_key: the dashboard over HTTPS
    http_key: Path | None = None


def new_node_id(role: str) -> str:
    return f"{role}-{secrets.token_hex(4)}"


class Node:
    role = "node"

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.node_id = config.node_id or new_node_id(self.role)
        self.server = Server(
            self.node_id,
            max_concurrent=config.max_concurrent,
            max_message=config.max_message,
            role=self.role,
            security=config.security,
        )
        may = partial(allowed, self.role)
        # A secure server also refuses keys revoked since their connection was made (bus/curve.py).
        sec = config.security
        # The coordinator admits running jobs' credentials too (actors/coordinator/credentials.py).
        live = getattr(self, "job_credential_live", None)
        self.server.access = admission(sec.allow, may, live) if sec is not None and sec.allow is not None else may
        self.events = EventQueue(config.event_window)
        # `endpoint` is what the node announces and others connect to;
        # `bound_endpoint` what it bound (they differ on a wildcard address).
        self.endpoint: str | None = None
        self.bound_endpoint: str | None = None
        self.peers: PeerPool | None = None
        self.zap: ZapHandler | None = None
        # Highest coordinator epoch seen: calls from an older one are refused,
        # so a coordinator that was replaced cannot act on the cluster.
        self.epoch = 0
        # Epochs sent by keys that may not fence (a forged takeover): ignored, counted, logged.
        self.epochs_ignored = 0
        self._epoch_log = RateLimitedLog(log)
        self.nursery: trio.Nursery | None = None
        self.metrics_addr: str | None = None
        self.http_addr: str | None = None
        self._stopping = trio.Event()
        self.server.add("ping", self._op_ping, bypass=True)
        self.server.add("info", self._op_info, bypass=True)
        self.server.add("poll", self.events.handle_poll, bypass=True)
        self.server.add("keys", self._op_keys)
        self.register()

    # -- hooks for roles ---------------------------------------------------------
    def register(self) -> None:
        """Add the role's ops to `self.server`."""

    async def main(self, nursery: trio.Nursery) -> None:
        """Start the role's background tasks in `nursery` (return promptly)."""

    async def shutdown(self) -> None:
        """Runs shielded when the node stops: stop work, make state durable."""

    def before_run(self) -> None:
        """Runs in a daemon (`run_forever`) just before trio starts, while the process is one thread."""

    def describe(self) -> dict[str, Any]:
        """Extra fields for `info` and `hello`."""
        return {}

    def fence(self, body: Any) -> None:
        """Refuse a call from a coordinator older than one already seen.

        Calls without an epoch (a user's CLI talking to one node) pass.
        """
        epoch = body.get("epoch") if isinstance(body, dict) else None
        if epoch is None:
            return
        if type(epoch) is not int or epoch < 0:
            raise BusError(f"'epoch' must be a non-negative integer, got {epoch!r}", code="bad-request")
        if epoch < self.epoch:
            raise BusError(
                f"coordinator epoch {epoch} is older than epoch {self.epoch}: a newer coordinator took over",
                code="fenced",
            )
        self.epoch = epoch

    # -- ops -----------------------------------------------------------------------
    def _op_ping(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        # Anyone may ping; only the coordinator's epoch counts (a forged one
        # would make this node refuse the real coordinator for good).
        if ctx.user is None or caller_class(ctx.user) in (COORDINATOR, ADMIN):
            self.fence(body)
        elif isinstance(body, dict) and body.get("epoch") is not None:
            self.epochs_ignored += 1
            self._epoch_log.warning("ignored epoch %r in a ping from %s (%s): only the coordinator's key may fence",
                                    body.get("epoch"), ctx.sender, ctx.user)
        return {"node": self.node_id, "role": self.role, "inc": self.events.incarnation, "epoch": self.epoch}

    def _op_keys(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        return {"changed": self.change_keys(KeyChange.from_wire(body))}

    def change_keys(self, change: KeyChange) -> int:
        """Apply an allow-list change to this node's list (its file, reloaded at once); keys changed."""
        sec = self.config.security
        if sec is None or sec.allow is None:
            raise BusError("this cluster is not secure (--security curve): it has no allow-list", code="bad-request")
        try:
            if change.action == "allow":
                sec.allow.add(Identity(change.name, change.role or "user", change.public or ""))
                return 1
            return sec.allow.remove(change.name)
        except (KeyFileError, OSError) as e:
            raise BusError(f"allow-list not changed: {e}", code="internal") from None

    def _op_info(self, body: Any, ctx: CallContext) -> dict[str, Any]:
        return self.info()

    def info(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "node": self.node_id,
            "endpoint": self.endpoint,
            "inc": self.events.incarnation,
            "next": self.events.next_seq,
            "stats": self.server.stats.to_dict(),
            **self.describe(),
        }

    # -- lifetime ------------------------------------------------------------------
    def stop(self) -> None:
        self._stopping.set()

    async def run(
        self, *, handle_signals: bool = False, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            self.peers = PeerPool(self.node_id, nursery, timeout=self.config.call_timeout,
                                  security=self.config.security)
            self.zap = self._start_zap(nursery)
            self.bound_endpoint = await nursery.start(self.server.serve, self.config.listen)
            cfg = self.config
            self.endpoint = advertised(cfg.listen, self.bound_endpoint, cfg.advertise,
                                       cfg.coordinator or cfg.beacon_addr)
            if handle_signals:
                nursery.start_soon(self._watch_signals)
            await self.main(nursery)
            await self._start_http(nursery)
            # Announce only once the role is ready to serve what it announces.
            self._start_discovery(nursery)
            log.info("%s %s listening on %s (announced as %s)", self.role, self.node_id,
                     self.bound_endpoint, self.endpoint)
            task_status.started(self.endpoint)
            await self._stopping.wait()
            with trio.CancelScope(shield=True), trio.move_on_after(30):
                try:
                    await self.shutdown()
                except Exception:
                    log.exception("%s %s: shutdown failed", self.role, self.node_id)
            self.peers.close()
            nursery.cancel_scope.cancel()

    async def _start_http(self, nursery: trio.Nursery) -> None:
        """The metrics and dashboard endpoints, in the node's own nursery and trio loop."""
        cfg = self.config
        if cfg.metrics:
            from .metrics import serve

            self.metrics_addr = await nursery.start(serve, self, cfg.metrics)
        if cfg.http:
            # Imported on demand, as weft.runtime.daemon imports the roles: the
            # dashboard sits above them and only a coordinator asked for it loads it.
            from weft.dashboard.server import serve as serve_http

            self.http_addr = await nursery.start(serve_http, self, cfg.http, cfg.http_tokens,
                                                 cfg.http_cert, cfg.http_key)

    def _start_zap(self, nursery: trio.Nursery) -> ZapHandler | None:
        """The ZAP handler that admits keys on the allow-list, bound before anything serves."""
        sec = self.config.security
        if sec is None or sec.allow is None:
            return None
        zap = ZapHandler(sec.allow, getattr(self, "job_credential_user", None))
        zap.bind()
        nursery.start_soon(zap.serve)
        nursery.start_soon(self._reload_on_sighup, sec.allow)
        return zap

    async def _reload_on_sighup(self, allow: AllowList) -> None:
        with trio.open_signal_receiver(signal.SIGHUP) as signals:
            async for _ in signals:
                try:
                    allow.load()
                except KeyFileError as e:
                    log.warning("%s %s: allow-list not reloaded, the old one stays: %s", self.role, self.node_id, e)
                else:
                    log.info("%s %s: allow-list reloaded (%d keys)", self.role, self.node_id, len(allow.keys))

    async def _watch_signals(self) -> None:
        # The receiver stays open until the node is gone: a second SIGTERM
        # while it shuts down (launchers often send two) must not fall back
        # to the default action and kill it halfway, leaving tasks orphaned.
        # trio restores the handlers it found when the receiver closes and
        # raises again any signal still queued then (one that arrived as the
        # node's nursery was cancelled): with SIG_IGN found, that is dropped,
        # not a death by SIGTERM at the very end of a clean stop (exit -15).
        stop_signals = (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in stop_signals}
        try:
            with trio.open_signal_receiver(*stop_signals) as signals:
                async for signum in signals:
                    name = signal.Signals(signum).name
                    if self._stopping.is_set():
                        log.info("%s %s: %s, already stopping", self.role, self.node_id, name)
                        continue
                    log.info("%s %s: %s, stopping", self.role, self.node_id, name)
                    self.stop()
        finally:
            if not self._stopping.is_set():
                # Gone without a stop (a crash): signals act as before again.
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
            # Stopping: they stay ignored, and the process still has its
            # teardown ahead: a late second signal would kill it there.

    def _start_discovery(self, nursery: trio.Nursery) -> None:
        cfg = self.config
        if cfg.coordinator:
            nursery.start_soon(self._post_hello, cfg.coordinator)
        elif cfg.beacon and self.role != "client":
            from weft.bus.beacon import Beacon

            beacon = Beacon(
                role=self.role,
                node=self.node_id,
                endpoint=self.endpoint,
                cluster=cfg.cluster,
                address=cfg.beacon_addr,
                port=cfg.beacon_port,
                interval=cfg.beacon_interval,
            )
            nursery.start_soon(beacon.run)

    @property
    def beacon_bind(self) -> str:
        """The address a beacon listener of this node binds (see weft.runtime.address.beacon_bind)."""
        return beacon_bind(self.config.beacon_addr)

    def hello_body(self) -> dict[str, Any]:
        return {"role": self.role, "node": self.node_id, "endpoint": self.endpoint, "inc": self.events.incarnation}

    async def _post_hello(self, endpoint: str) -> None:
        retry = 0.002
        while True:
            # get() each time: it replaces a handle that was closed meanwhile.
            peer = self.peers.get(endpoint)
            if not peer.post("hello", self.hello_body()):
                # Not connected yet (or any more): send it the moment the
                # connection is made. Blind sleeps (2 ms, doubling) found it
                # 4-60 ms late while a local cluster's daemons shared the
                # machine's cores at start.
                if not await peer.post_when_connected("hello", self.hello_body(), self.config.hello_interval):
                    # Closed meanwhile, or still no connection: try again soon,
                    # so a coordinator that is up learns us at once.
                    await trio.sleep(min(retry, 0.05, self.config.hello_interval))
                    retry *= 2
                    continue
            retry = 0.002
            await trio.sleep(self.config.hello_interval)


def _bind_error(exc: BaseException) -> BusError | None:
    """The failed bind inside `exc` (nurseries wrap it in exception groups), if that is what it is."""
    if isinstance(exc, BusError) and exc.code == "bind-failed":
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            found = _bind_error(sub)
            if found is not None:
                return found
    return None


def run_forever(node: Node) -> None:
    """Run a node until SIGTERM/SIGINT; print where it listens once ready.

    The line `weft <role> <node-id> listening on <endpoint>` on stdout is for
    people and for launchers (`weft up`, the tests) that wait for it. A
    listen endpoint it cannot bind (in use, no such address) raises
    SettingError with one line naming it.
    """
    import sys

    from .memory import keep_freed_memory
    from .settings import SettingError

    keep_freed_memory()
    node.before_run()

    async def _main() -> None:
        async with trio.open_nursery() as nursery:
            endpoint = await nursery.start(
                lambda task_status: node.run(handle_signals=True, task_status=task_status)
            )
            sys.stdout.write(f"weft {node.role} {node.node_id} listening on {endpoint}\n")
            sys.stdout.flush()

    try:
        trio.run(_main)
    except KeyboardInterrupt:
        pass
    except BaseException as e:
        bind = _bind_error(e)
        if bind is None:
            raise
        raise SettingError(bind.message) from None
