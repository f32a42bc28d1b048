"""HTTP requests counted and timed by route template and status, and `GET /metrics` answered
before any other middleware, so that no app route shadows it, as on the LangGraph Agent Server.
It needs what the API's routes need (the x-api-key, custom auth): the counters name graphs,
routes and the traffic of the deployment. `--metrics-port` serves it openly on a port of its own."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.process import tracing
from gateway.process.metrics import HTTP_REQUESTS, HTTP_SECONDS, edge, render
from gateway.shared.util import within

logger = logging.getLogger("gateway.http")

METRICS_PATH = "/metrics"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds a scrape waits for what it reads from storage (the queue) before it answers without.
_REFRESH_TIMEOUT = 1.0

Refresh = Callable[[], Awaitable[None]]


class MetricsMiddleware:
    """`refresh` updates the gauges that are read rather than counted (the run queue) before a
    scrape; `endpoint=False` serves no /metrics (langgraph.json's `http.disable_meta`); `guard`
    is the middleware a scrape passes first (outermost first): the API's auth."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        endpoint: bool = True,
        refresh: Refresh | None = None,
        guard: Sequence[Middleware] = (),
    ) -> None:
        self.app = app
        self._endpoint = endpoint
        self._refresh = refresh
        scrape: ASGIApp = self._scrape_app
        for cls, args, kwargs in reversed(guard):
            scrape = cls(scrape, *args, **kwargs)
        self._guarded_scrape = scrape
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._seconds: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                edge.set("http")
            await self.app(scope, receive, send)
            return
        edge.set("http")
        method = scope["method"]
        if self._endpoint and scope["path"] == METRICS_PATH and method in ("GET", "HEAD"):
            await self._guarded_scrape(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Routed by now; the tracing middleware ends its span with the response's end.
                tracing.name_request(method, _route(scope))
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except BaseException:
            status = status or 500
            raise
        finally:
            # 499: the client left before an answer started (nginx's name for it).
            self._count(method if method in _METHODS else "other", _route(scope), status or 499, started)

    def _count(self, method: str, route: str, status: int, started: float) -> None:
        seconds = self._seconds.get((method, route))
        if seconds is None:
            seconds = self._seconds[(method, route)] = HTTP_SECONDS.labels(method, route)
        seconds.observe(time.perf_counter() - started)
        requests = self._requests.get((method, route, status))
        if requests is None:
            requests = self._requests[(method, route, status)] = HTTP_REQUESTS.labels(method, route, str(status))
        requests.inc()

    async def _scrape_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._scrape(scope["method"], send)

    async def _scrape(self, method: str, send: Send) -> None:
        if self._refresh is not None:
            try:
                await within(_REFRESH_TIMEOUT, self._refresh())
            except Exception as exc:
                # The gauges keep their last values; the counters are what matters most.
                logger.debug("metrics: could not refresh the run queue: %s: %s", type(exc).__name__, exc)
        body, content_type = render()
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


def _route(scope: Scope) -> str:
    """The template of the route that served the request (`/threads/{thread_id}`), not its path."""
    return getattr(scope.get("route"), "path", None) or "unmatched"
