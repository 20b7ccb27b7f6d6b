"""Bus micro-benchmark: raw pyzmq ping-pong against the weft RPC layer.

    python -m weft.bench.bus_pingpong [--n N] [--smoke] [--json FILE]

Measures, over tcp://127.0.0.1 with the server in a separate process each time:

  (a) raw pyzmq: blocking DEALER -> ROUTER, a small msgpack map echoed back;
  (b) weft: `Peer.call("echo", ...)` in trio against a `bus.rpc.Server`,
      one call at a time;
  (c) weft with 64 calls in flight (64 tasks sharing one peer).

For each: calls per second and mean round trip in microseconds (for (c) the
mean time from call to reply, which includes queueing behind the other 63),
the median over `--rounds` alternating rounds (default 3), after a warm-up.
Prints a table and the weft/raw ratio; --json writes
{"machine": {...}, "results": [{"name", "value", "unit"}, ...]}.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

INFLIGHT = 64
WARMUP = 200
PAYLOAD = {"op": "echo", "seq": 0, "data": "x" * 32}


# -- servers (child processes) ------------------------------------------------------


def _raw_server(conn: Any) -> None:
    import msgpack
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind("tcp://127.0.0.1:0")
    conn.send(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    conn.close()
    packb, unpackb = msgpack.packb, msgpack.unpackb
    while True:
        ident, frame = sock.recv_multipart()
        sock.send_multipart([ident, packb(unpackb(frame))])


def _weft_server(conn: Any) -> None:
    import trio

    from weft.bus.rpc import Server

    async def main() -> None:
        server = Server("bench-server", role="bench")
        server.add("echo", lambda body, ctx: body)
        async with trio.open_nursery() as nursery:
            conn.send(await nursery.start(server.serve, "tcp://127.0.0.1:0"))
            conn.close()

    trio.run(main)


class _ServerProcess:
    def __init__(self, target: Callable[[Any], None]) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        if not parent.poll(30):
            self.stop()
            raise RuntimeError(f"{target.__name__} did not start within 30 s")
        self.endpoint: str = parent.recv()

    def __enter__(self) -> _ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


# -- clients -------------------------------------------------------------------------


def _raw_client(endpoint: str, n: int) -> float:
    """Seconds for `n` sequential round trips (after a warm-up)."""
    import msgpack
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    packb, unpackb = msgpack.packb, msgpack.unpackb
    try:
        for i in range(WARMUP):
            sock.send(packb(dict(PAYLOAD, seq=i)))
            sock.recv()
        start = time.perf_counter()
        for i in range(n):
            sock.send(packb(dict(PAYLOAD, seq=i)))
            reply = unpackb(sock.recv())
            if reply["seq"] != i:
                raise RuntimeError(f"raw: reply {reply['seq']} to call {i}")
        return time.perf_counter() - start
    finally:
        sock.close()
        ctx.term()


def _weft_client(endpoint: str, n: int, inflight: int) -> tuple[float, float]:
    """(seconds for `n` calls, mean call-to-reply seconds) with `inflight` concurrent callers."""
    import trio

    from weft.bus.peers import connect

    async def main() -> tuple[float, float]:
        async with connect(endpoint, "bench-client", timeout=60) as peer:
            for i in range(WARMUP):
                await peer.call("echo", dict(PAYLOAD, seq=i))
            latency = 0.0

            async def caller(first: int, count: int) -> None:
                nonlocal latency
                clock = time.perf_counter
                for i in range(first, first + count):
                    t = clock()
                    reply = await peer.call("echo", dict(PAYLOAD, seq=i))
                    latency += clock() - t
                    if reply["seq"] != i:
                        raise RuntimeError(f"weft: reply {reply['seq']} to call {i}")

            start = time.perf_counter()
            if inflight == 1:
                await caller(0, n)
            else:
                per, extra = divmod(n, inflight)
                async with trio.open_nursery() as nursery:
                    first = 0
                    for k in range(inflight):
                        count = per + (k < extra)
                        nursery.start_soon(caller, first, count)
                        first += count
            return time.perf_counter() - start, latency / n

    return trio.run(main)


def raw_roundtrip_ms(n: int) -> float:
    """Mean ms of one raw pyzmq round trip (sequential, after a warm-up) to a
    server process of its own: `weft bench`'s `roundtrip`, the floor of a hop."""
    with _ServerProcess(_raw_server) as raw:
        return _raw_client(raw.endpoint, n) / n * 1000.0


# -- report -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import msgpack
    import trio
    import zmq

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "trio": trio.__version__,
        "msgpack": ".".join(map(str, msgpack.version)),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run(n: int, rounds: int = 3) -> list[dict[str, Any]]:
    """Alternate the three measurements `rounds` times; report each one's median."""
    samples: dict[str, list[float]] = {}

    def sample(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    par = f"weft_inflight{INFLIGHT}"
    with _ServerProcess(_raw_server) as raw, _ServerProcess(_weft_server) as weft:
        for _ in range(rounds):
            seconds = _raw_client(raw.endpoint, n)
            sample("raw_pyzmq_seq_calls_per_s", n / seconds)
            sample("raw_pyzmq_seq_rtt_mean_us", seconds / n * 1e6)
            seconds, mean = _weft_client(weft.endpoint, n, 1)
            sample("weft_seq_calls_per_s", n / seconds)
            sample("weft_seq_rtt_mean_us", mean * 1e6)
            seconds, mean = _weft_client(weft.endpoint, n, INFLIGHT)
            sample(f"{par}_calls_per_s", n / seconds)
            sample(f"{par}_rtt_mean_us", mean * 1e6)

    def result(name: str, value: float, unit: str) -> dict[str, Any]:
        return {"name": name, "value": round(value, 3), "unit": unit}

    results = [
        result(name, statistics.median(values), "calls/s" if name.endswith("_per_s") else "us")
        for name, values in samples.items()
    ]
    by = {r["name"]: r["value"] for r in results}
    raw_rate = by["raw_pyzmq_seq_calls_per_s"]
    results.append(result("weft_seq_vs_raw_seq_ratio", by["weft_seq_calls_per_s"] / raw_rate, "x"))
    results.append(result(f"{par}_vs_raw_seq_ratio", by[f"{par}_calls_per_s"] / raw_rate, "x"))
    return results


def table(results: list[dict[str, Any]], n: int, rounds: int) -> str:
    by = {r["name"]: r["value"] for r in results}
    rows = [
        ("raw pyzmq, sequential", "raw_pyzmq_seq"),
        ("weft rpc, sequential", "weft_seq"),
        (f"weft rpc, {INFLIGHT} in flight", f"weft_inflight{INFLIGHT}"),
    ]
    lines = [f"bus ping-pong over tcp://127.0.0.1, n={n:,}, median of {rounds} rounds", f"{'':28} {'calls/s':>10} {'mean rtt':>12}"]
    for label, key in rows:
        rtt_key = key + "_rtt_mean_us"
        lines.append(f"{label:28} {by[key + '_calls_per_s']:>10,.0f} {by[rtt_key]:>9,.1f} us")
    lines.append(f"weft/raw (sequential calls/s): {by['weft_seq_vs_raw_seq_ratio']:.2f}x")
    lines.append(
        f"weft {INFLIGHT} in flight / raw sequential (calls/s): "
        f"{by[f'weft_inflight{INFLIGHT}_vs_raw_seq_ratio']:.2f}x"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m weft.bench.bus_pingpong", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=None, help="calls per measurement (default 5000)")
    ap.add_argument("--smoke", action="store_true", help="a quick run (n=500) to check it works")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported (default 3)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args(argv)
    n = args.n if args.n is not None else (500 if args.smoke else 5000)
    if n < INFLIGHT:
        ap.error(f"--n must be at least {INFLIGHT}")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    results = run(n, args.rounds)
    print(table(results, n, args.rounds))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": {**machine(), "n": n, "rounds": args.rounds}, "results": results}, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
