"""The dashboard's web app (starlette) served by hypercorn's trio worker in the coordinator's own loop.

Routes: the page (`/`, one HTML shell whose script draws every view), its
assets (`/static/`), the JSON API (`/api/...`, for scripts too) and one
server-sent-events stream (`/api/stream`) that pushes counts, and a job's
state and new log bytes, while a page is open. Read-only: nothing here
changes the cluster. With a tokens file every request needs a token (a
bearer token, or the cookie `/login` sets); beyond loopback one is required
(weft.runtime.daemon.check_http refuses to start without it).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from . import api

log = logging.getLogger("weft.dashboard")
STATIC = Path(str(resources.files("weft.dashboard") / "static"))
COOKIE = "weft_token"
# How often the stream pushes counts; a job's new log bytes go out as they come (at most this late).
TICK = 1.0
# How long a page waits for its running jobs' progress from their compute nodes.
PROGRESS_WAIT = 1.0


class Tokens:
    """The tokens file (`ROLE TOKEN` a line, `weft keys token` appends them), re-read when it changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._mtime: float | None = None
        self._tokens: dict[str, str] = {}

    def role_of(self, token: str) -> str | None:
        if self.path is None:
            return "admin"
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return None
        if mtime != self._mtime:
            self._tokens = {}
            for line in self.path.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and not line.startswith("#"):
                    self._tokens[parts[1]] = parts[0]
            self._mtime = mtime
        for known, role in self._tokens.items():
            if secrets.compare_digest(known.encode(), token.encode()):
                return role
        return None


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, default=_plain, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json")


def _plain(v: Any) -> Any:
    if isinstance(v, bytes | memoryview):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, set | tuple):
        return list(v)
    return str(v)


def _int(request: Request, key: str, default: int) -> int:
    raw = request.query_params.get(key)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"'{key}' must be an integer, got {raw!r}") from None


def build_app(node: Any, tokens: Tokens, *, secure: bool = False) -> Starlette:
    def guard(handler: Any) -> Any:
        async def checked(request: Request) -> Response:
            if tokens.path is not None:
                auth = request.headers.get("authorization", "")
                given = auth[7:].strip() if auth.lower().startswith("bearer ") else request.cookies.get(COOKIE, "")
                if not given or tokens.role_of(given) is None:
                    if request.url.path.startswith("/api/"):
                        return _json({"error": "a dashboard token is needed (weft keys token)"}, 401)
                    return RedirectResponse("/login", status_code=303)
            try:
                return await handler(request)
            except api.NotFound as e:
                return _json({"error": str(e)}, 404)
            except ValueError as e:
                return _json({"error": str(e)}, 400)
        return checked

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            return Response("not found\n", status_code=404, media_type="text/plain")
        return FileResponse(path)

    async def login(request: Request) -> Response:
        token = request.query_params.get("token")
        if token is None:
            return FileResponse(STATIC / "login.html", media_type="text/html")
        if tokens.role_of(token) is None:
            return Response("unknown token\n", status_code=401, media_type="text/plain")
        r = RedirectResponse("/", status_code=303)
        r.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure)
        return r

    async def get_stats(request: Request) -> Response:
        return _json(api.stats(node))

    async def get_nodes(request: Request) -> Response:
        return _json({"nodes": api.nodes(node)})

    async def get_jobs(request: Request) -> Response:
        q = request.query_params
        page = api.jobs(node, state=q.get("state"), group=q.get("group") or None,
                        flow=q.get("flow") or None, name=q.get("name") or None,
                        offset=_int(request, "offset", 0), limit=_int(request, "limit", 50))
        await _progress(node, page["jobs"])
        return _json(page)

    async def get_job(request: Request) -> Response:
        view = api.job(node, request.path_params["job"])
        await _progress(node, [view])
        return _json(view)

    async def get_log(request: Request) -> Response:
        return _json(await _log(node, request.path_params["job"], _int(request, "offset", 0), 0.0))

    async def get_dag(request: Request) -> Response:
        q = request.query_params
        return _json(api.dag(node, flow=q.get("flow") or None, group=q.get("group") or None))

    async def get_failures(request: Request) -> Response:
        return _json(api.failures(node))

    async def stream(request: Request) -> Response:
        jid = request.query_params.get("job")
        if jid:
            api.job(node, jid)  # 404 now rather than an empty stream
        offset = _int(request, "offset", 0)
        return StreamingResponse(_events(node, jid, offset), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    routes = [
        Route("/", guard(page)),
        Route("/login", login),
        Route("/static/{name}", static),
        Route("/api/stats", guard(get_stats)),
        Route("/api/nodes", guard(get_nodes)),
        Route("/api/jobs", guard(get_jobs)),
        Route("/api/jobs/{job:path}/log", guard(get_log)),
        Route("/api/jobs/{job:path}", guard(get_job)),
        Route("/api/dag", guard(get_dag)),
        Route("/api/failures", guard(get_failures)),
        Route("/api/stream", guard(stream)),
    ]
    return Starlette(routes=routes)


async def _log(node: Any, jid: str, offset: int, wait: float) -> dict[str, Any]:
    from weft.actors.coordinator.follow import relay_logs
    from weft.bus.errors import BusError

    try:
        r = await relay_logs(node, {"job": jid, "offset": max(0, offset), "wait": wait}, None)
    except BusError as e:
        if e.code == "missing":
            raise api.NotFound(e.message) from None
        raise ValueError(e.message) from None
    data = r.get("data") or b""
    return {"data": bytes(data).decode("utf-8", "replace"), "offset": r.get("offset", offset),
            "done": bool(r.get("done"))}


async def _progress(node: Any, views: list[dict[str, Any]]) -> None:
    """Add `progress` [percent, message] to the running jobs among `views` that reported some.

    Asked of their compute nodes as `weft status` does, for this page's jobs
    only; a node slower than PROGRESS_WAIT is not waited for.
    """
    from weft.actors.coordinator.follow import relay_progress
    from weft.bus.errors import BusError

    running = [v["job"] for v in views if v.get("state") == "running"]
    if not running:
        return
    with trio.move_on_after(PROGRESS_WAIT):
        try:
            got = (await relay_progress(node, {"jobs": running}, None))["progress"]
        except BusError:
            return
        for v in views:
            if v["job"] in got:
                v["progress"] = got[v["job"]]


def _event(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, default=_plain, separators=(',', ':'))}\n\n".encode()


async def _events(node: Any, jid: str | None, offset: int) -> AsyncIterator[bytes]:
    """Counts every TICK; with a job, its view when it changes and its log as it grows."""
    last_view = None
    log_done = jid is None
    next_stats = 0.0
    yield _event("history", api.history(node))
    while True:
        now = trio.current_time()
        if now >= next_stats:
            next_stats = now + TICK
            s = api.shared_stats(node)
            yield _event("stats", {k: s[k] for k in ("jobs", "busy", "slots", "time", "computes", "storages")})
        if jid is not None:
            try:
                view = api.brief(node, jid)  # its summary only: no pass over the other jobs
            except api.NotFound:
                return
            brief = {k: view.get(k) for k in ("state", "outcome", "code", "cause", "node", "attempts")}
            if brief != last_view:
                last_view = brief
                yield _event("job", {**brief, "ran": view.get("ran")})
        if log_done:
            await trio.sleep(max(0.0, next_stats - trio.current_time()))
            continue
        # The log call itself waits (up to TICK) for new bytes of a running job.
        try:
            chunk = await _log(node, jid, offset, TICK)
        except (ValueError, api.NotFound):
            log_done = True
            continue
        if chunk["data"]:
            yield _event("log", chunk)
        offset = chunk["offset"]
        log_done = chunk["done"]
        if not chunk["data"] and not log_done:
            await trio.sleep(min(TICK, max(0.0, next_stats - trio.current_time())))


async def serve(node: Any, addr: str, tokens: Path | None, cert: Path | None = None, key: Path | None = None, *,
                task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the dashboard for `node` (a coordinator) on `addr` until cancelled; started() with its URL."""
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    from weft.bus.errors import BusError
    from weft.runtime.httpaddr import parse_addr, show

    host, port = parse_addr(addr)
    config = Config()
    config.bind = [show(host, port)]
    config.accesslog = None
    config.errorlog = log
    config.graceful_timeout = 1.0
    if cert is not None and key is not None:
        config.certfile, config.keyfile = str(cert), str(key)
    app = build_app(node, Tokens(Path(tokens) if tokens else None), secure=cert is not None)
    try:
        # Bound here first, so a taken address is one line naming it (hypercorn's is a traceback).
        sockets = config.create_sockets()
    except OSError as e:
        raise BusError(f"cannot serve --http on {addr}: {e.strerror or e}", code="bind-failed") from None
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
        sock.close()
    try:
        config.create_ssl_context()
    except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
        raise BusError(f"cannot serve --http over HTTPS: {e}", code="bind-failed") from None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(lambda task_status: hypercorn_serve(app, config, task_status=task_status))
        log.info("coordinator %s: dashboard on %s", node.node_id, binds[0] if binds else addr)
        task_status.started(binds[0] if binds else f"http://{addr}")
