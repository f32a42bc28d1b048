"""The HTTP/SSE app: the LangGraph Agent Server's API over a backend (the run core in this
process, gateway.http._local, or a gateway reached over gRPC, gateway.bridge.backend), shaped by
langgraph.json's `http` section as the Agent Server shapes its own:

- `cors`: Starlette's CORSMiddleware with the given options, outside everything else (so that
  preflights are answered before auth, and refusals carry CORS headers); without it, any origin.
  `Location` and `Content-Location` (and the pagination headers) stay exposed either way: the
  SDKs read them.
- `disable_assistants`, `disable_threads` (the thread protocol's routes too), `disable_runs`,
  `disable_store`: those routes are not served (404);
  `disable_meta`: no /info, /metrics, /openapi.json or /docs (/ok stays, so an operator can see
  the server is up).
- `/openapi.json` and `/docs` (gateway.http._openapi) describe the routes served, need no
  credentials, and no route of `app` shadows them, as on the Agent Server.
- `app`: a user's Starlette or FastAPI app; its routes win over the API's (not over /ok), its
  middleware runs first (`middleware_order: auth_first`: after auth, on every route), and
  auth applies to its routes only with `enable_custom_route_auth`.

Outside all of it: the metrics middleware (gateway.http._metrics), which also answers
`/metrics` (behind the same auth as the API), and with tracing on, OpenTelemetry's ASGI
middleware. Outside those, the gRPC API's own paths (`/langgraph.gateway.v1.*`,
`/grpc.health.v1.*`) go to `web`, the same services over Connect and gRPC-Web
(gateway.rpc.web), whose interceptors do their auth, metrics and tracing as on the gRPC port;
CORS applies to them as to the rest, with the protocols' own headers allowed and exposed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.config.http import HttpConfig
from gateway.http import _assistants, _crons, _openapi, _protocol, _runs, _store, _threads
from gateway.http._auth import ApiKeyMiddleware
from gateway.http._backend import Backend
from gateway.http._errors import http_exception
from gateway.http._metrics import MetricsMiddleware, Refresh
from gateway.http._utils import json_response
from gateway.process import tracing
from gateway.process.health import Health
from gateway.shared.settings import MAX_BODY_BYTES

# The headers the SDKs read, readable by browser clients too.
_EXPOSED = ("Location", "Content-Location", "X-Pagination-Total", "X-Pagination-Next")


async def ok(request: Request) -> Response:
    # ?check_db=1: a readiness probe, answered 503 naming the backends that did not answer.
    health: Health | None = getattr(request.app.state, "health", None)
    if health is None or request.query_params.get("check_db", "0").lower() not in ("1", "true"):
        return json_response({"ok": True})
    ready, body = await health.check()
    return json_response(body, 200 if ready else 503)


async def get_info(request: Request) -> Response:
    return json_response(request.app.state.info)


def _merged(given: Sequence[str], required: Sequence[str]) -> list[str]:
    if "*" in given:
        return list(given)
    return list(given) + [h for h in required if h.lower() not in map(str.lower, given)]


def cors_middleware(http: HttpConfig, *, allow: Sequence[str] = (), expose: Sequence[str] = _EXPOSED) -> Middleware:
    """`allow` and `expose`: headers a browser client of these routes must send and read,
    whatever the `cors` section lists."""
    if http.cors is None:
        return Middleware(
            CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"], expose_headers=expose
        )
    cors = http.cors
    return Middleware(
        CORSMiddleware,
        allow_origins=cors.allow_origins,
        allow_methods=cors.allow_methods,
        allow_headers=_merged(cors.allow_headers, allow),
        allow_credentials=cors.allow_credentials,
        allow_origin_regex=cors.allow_origin_regex,
        expose_headers=_merged(cors.expose_headers, expose),
        max_age=cors.max_age,
    )


WEB_PREFIXES = ("/langgraph.gateway.v1.", "/grpc.health.v1.")


class WebApi(Protocol):
    """The gRPC API over HTTP (gateway.rpc.web.WebRpc), and the headers its browser clients
    send and read."""

    allow_headers: Sequence[str]
    expose_headers: Sequence[str]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


class WebRoutes:
    """The gRPC API's paths to `web` (behind CORS), everything else to `app`."""

    def __init__(self, app: ASGIApp, web: WebApi, http: HttpConfig) -> None:
        self.app = app
        cors = cors_middleware(http, allow=web.allow_headers, expose=web.expose_headers)
        self.web = cors.cls(web, *cors.args, **cors.kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(WEB_PREFIXES):
            await self.web(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _with_middleware(routes: Sequence[BaseRoute], middleware: Sequence[Middleware]) -> list[BaseRoute]:
    """The routes, each wrapped in `middleware` (outermost first), as Starlette wraps a Mount's."""
    for route in routes:
        for cls, args, kwargs in reversed(middleware):
            route.app = cls(route.app, *args, **kwargs)  # type: ignore[attr-defined]
    return list(routes)


def build_app(
    backend: Backend,
    *,
    info: dict[str, Any],
    api_key: str | None = None,
    max_body_bytes: int | None = None,
    http: HttpConfig | None = None,
    auth: Sequence[Middleware] = (),
    custom_app: Starlette | None = None,
    health: Health | None = None,
    refresh_metrics: Refresh | None = None,
    web: WebApi | None = None,
) -> Starlette:
    """`auth` is the middleware that authenticates requests to the API (the custom auth of
    langgraph.json in the gateway, the forwarding of credentials in the bridge); `custom_app`
    is `http.app`, loaded; `health` answers `/ok?check_db=1`; `refresh_metrics` updates the
    gauges read at each scrape; `web` serves the gRPC API's paths (gateway.rpc.web)."""
    http = http or HttpConfig()
    protected = [Middleware(ApiKeyMiddleware, api_key=api_key)] if api_key else []
    protected += auth
    routes: list[BaseRoute] = []
    if not http.disable_runs:
        routes += _crons.routes
        routes += _runs.routes
    if not http.disable_threads:
        routes += _threads.routes
        routes += _protocol.routes
    if not http.disable_assistants:
        routes += _assistants.routes
    if not http.disable_store:
        routes += _store.routes
    meta: list[BaseRoute] = []
    if not http.disable_meta:
        meta.append(Route("/info", get_info, methods=["GET"]))
        meta += _openapi.routes(_openapi.served(_openapi.document(), [*meta, *routes]))
    if custom_app is None:
        middleware = [cors_middleware(http), *protected]
    elif http.middleware_order == "auth_first":
        # The user's middleware runs after auth, on the API's routes as on the app's.
        middleware = [*protected, *custom_app.user_middleware]
    else:
        middleware = protected
    api = Starlette(
        routes=[Route("/ok", ok, methods=["GET"]), *meta, *routes],
        middleware=middleware,
        exception_handlers={HTTPException: http_exception},
    )
    api.state.backend = backend
    api.state.info = info
    api.state.max_body_bytes = max_body_bytes or MAX_BODY_BYTES
    # HttpServer.stop() sets it; open event streams then end.
    api.state.closing = asyncio.Event()
    # With disable_meta, /ok answers but checks nothing, as the Agent Server's.
    api.state.health = None if http.disable_meta else health
    app = api if custom_app is None else _beside(custom_app, api, http, protected)
    app.add_middleware(MetricsMiddleware, endpoint=not http.disable_meta, refresh=refresh_metrics, guard=protected)
    tracing.instrument_app(app)
    if web is not None:
        app.add_middleware(WebRoutes, web=web, http=http)
    return app


def metrics_app(*, health: Health | None, refresh_metrics: Refresh | None) -> Starlette:
    """What `--metrics-port` serves: /metrics and /ok only, without credentials (a gateway that
    serves gRPC alone, or whose API port needs credentials a scraper does not have)."""
    app = Starlette(routes=[Route("/ok", ok, methods=["GET"])])
    app.state.health = health
    app.state.closing = asyncio.Event()
    app.add_middleware(MetricsMiddleware, refresh=refresh_metrics)
    return app


def _beside(custom: Starlette, api: Starlette, http: HttpConfig, protected: list[Middleware]) -> Starlette:
    """The user's app serving its routes first, then the API's, as the Agent Server merges them."""
    own_middleware = list(custom.user_middleware)
    route_auth = protected if http.enable_custom_route_auth else []
    if http.middleware_order == "auth_first":
        # The user's middleware runs after auth, route by route, rather than around everything.
        user_routes = _with_middleware(custom.router.routes, [*route_auth, *own_middleware])
        ok_route = Route("/ok", ok, methods=["GET"], middleware=own_middleware)
        custom.user_middleware = [cors_middleware(http)]
    else:
        user_routes = _with_middleware(custom.router.routes, route_auth)
        ok_route = Route("/ok", ok, methods=["GET"])
        custom.user_middleware = [*own_middleware, cors_middleware(http)]
    described = [r for r in api.routes if isinstance(r, Route) and r.path in ("/openapi.json", "/docs")]
    custom.router.routes = [ok_route, *described, *user_routes, Mount("", app=api)]
    custom.state.closing = api.state.closing
    custom.state.health = api.state.health
    return custom
