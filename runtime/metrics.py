"""Prometheus metrics of one daemon (`--metrics HOST:PORT`), served on its own trio loop.

Nothing here runs per message: every value is read at scrape time from the
counters the node already keeps (the RPC server's stats, the event queue,
`describe()`, the coordinator's state), by a custom collector. The role's
own collector is in weft.runtime.metrics_roles. The HTTP side is the least
that Prometheus needs (GET /metrics, one request per connection) on
trio.serve_tcp: no thread and no second event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector

from .httpaddr import parse_addr, show

log = logging.getLogger("weft.metrics")

# A request head larger than this is not a scrape.
MAX_HEAD = 8192


class NodeCollector:
    """What every daemon exposes: RPC counters, its event queue, and the role's own families."""

    def __init__(self, node: Any) -> None:
        from .metrics_roles import role_collector

        self.node = node
        self.role = role_collector(node)

    def collect(self) -> Iterator[Metric]:
        node = self.node
        labels = {"role": node.role, "node": node.node_id}
        info = GaugeMetricFamily("weft_node_info", "This daemon: its role and node id (always 1).",
                                 labels=list(labels))
        info.add_metric(list(labels.values()), 1)
        yield info
        server = node.server
        s = server.stats
        for name, value, doc in (
            ("calls", s.calls, "RPC calls received and admitted to their op (all ops)."),
            ("posts", s.posts, "RPC posts received (one-way messages)."),
            ("busy", s.busy, "RPC calls answered busy (the admission limit was reached)."),
            ("errors", s.errors, "RPC handlers that raised (answered with an error code)."),
            ("malformed", s.malformed, "Messages dropped as malformed."),
            ("unknown_ops", s.unknown_ops, "Messages naming an op this daemon does not have."),
            ("forbidden", s.forbidden, "Messages refused: the op is not allowed for the caller's key."),
        ):
            yield CounterMetricFamily(f"weft_rpc_{name}", doc, value=value)
        yield from _per_op(server)
        yield CounterMetricFamily("weft_epochs_ignored", "Epochs in pings from keys that may not fence (ignored).",
                                  value=getattr(node, "epochs_ignored", 0))
        yield GaugeMetricFamily("weft_rpc_in_flight", "Admitted async RPC calls in progress.",
                                value=node.server.in_flight)
        ev = node.events
        yield GaugeMetricFamily("weft_event_queue_depth", "Events held in this daemon's event queue window.",
                                value=ev.next_seq - ev.first_seq)
        yield CounterMetricFamily("weft_events", "Events appended to this daemon's event queue.",
                                  value=ev.next_seq - 1)
        yield CounterMetricFamily("weft_event_poll_wakeups", "Times waiting pollers were woken by new events.",
                                  value=ev.wakeups)
        if self.role is not None:
            yield from self.role.collect()


_PER_OP = (
    ("calls", "RPC calls received and admitted, by op."),
    ("posts", "RPC posts received, by op."),
    ("errors", "RPC handlers that raised, by op."),
    ("busy", "RPC calls answered busy, by op."),
)


def _per_op(server: Any) -> Iterator[Metric]:
    """weft_rpc_op_<count>_total{op}: the server's own per-op counts, every op it serves."""
    ops = sorted(server.stats.ops.items())
    for attr, doc in _PER_OP:
        fam = CounterMetricFamily(f"weft_rpc_op_{attr}", doc, labels=["op"])
        for op, entry in ops:
            fam.add_metric([op], getattr(entry, attr))
        yield fam


def registry_for(node: Any) -> CollectorRegistry:
    """A registry of its own per node (tests run several nodes in one process)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(NodeCollector(node))
    ProcessCollector(registry=reg)
    return reg


async def _answer(stream: trio.SocketStream, registry: CollectorRegistry) -> None:
    head = b""
    with trio.move_on_after(10):
        while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            head += chunk
    line = head.split(b"\r\n", 1)[0].split()
    if len(line) < 2 or line[0] not in (b"GET", b"HEAD"):
        status, ctype, body = b"400 Bad Request", b"text/plain", b"expected GET /metrics\n"
    elif line[1].split(b"?")[0] not in (b"/metrics", b"/"):
        status, ctype, body = b"404 Not Found", b"text/plain", b"metrics are at /metrics\n"
    else:
        status, ctype, body = b"200 OK", CONTENT_TYPE_LATEST.encode(), generate_latest(registry)
    if line[:1] == [b"HEAD"]:
        body_out = b""
    else:
        body_out = body
    await stream.send_all(b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype + b"\r\nContent-Length: "
                          + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body_out)


async def serve(node: Any, addr: str, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Serve `node`'s metrics on `addr` (HOST:PORT) until cancelled; started() with the bound HOST:PORT."""
    registry = registry_for(node)
    host, port = parse_addr(addr)

    async def handle(stream: trio.SocketStream) -> None:
        try:
            async with stream:
                await _answer(stream, registry)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the scraper went away
        except Exception:
            log.exception("%s %s: a metrics request failed", node.role, node.node_id)

    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as e:
        from weft.bus.errors import BusError

        raise BusError(f"cannot serve --metrics on {addr}: {e.strerror or e}", code="bind-failed") from None
    sockname = listeners[0].socket.getsockname()
    bound = show(sockname[0], sockname[1])
    log.info("%s %s: metrics on http://%s/metrics", node.role, node.node_id, bound)
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handle, listeners)
        task_status.started(bound)
