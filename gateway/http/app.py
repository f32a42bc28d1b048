"""The HTTP/SSE app: the LangGraph Agent Server's API over a backend (the run core in this
process, gateway.http._local, or a gateway reached over gRPC, gateway.http.remote)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http import _assistants, _protocol, _runs, _threads
from gateway.http._auth import ApiKeyMiddleware
from gateway.http._backend import Backend
from gateway.http._errors import http_exception
from gateway.http._utils import json_response
from gateway.settings import MAX_BODY_BYTES

# The headers the SDKs read, readable by browser clients too.
_EXPOSED = ["Location", "Content-Location", "X-Pagination-Total", "X-Pagination-Next"]


async def ok(request: Request) -> Response:
    return json_response({"ok": True})


async def get_info(request: Request) -> Response:
    return json_response(request.app.state.info)


def build_app(
    backend: Backend, *, info: dict[str, Any], api_key: str | None = None, max_body_bytes: int | None = None
) -> Starlette:
    middleware = [
        Middleware(
            CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"], expose_headers=_EXPOSED
        )
    ]
    if api_key:
        middleware.append(Middleware(ApiKeyMiddleware, api_key=api_key))
    app = Starlette(
        routes=[
            Route("/ok", ok, methods=["GET"]),
            Route("/info", get_info, methods=["GET"]),
            *_runs.routes,
            *_threads.routes,
            *_protocol.routes,
            *_assistants.routes,
        ],
        middleware=middleware,
        exception_handlers={HTTPException: http_exception},
    )
    app.state.backend = backend
    app.state.info = info
    app.state.max_body_bytes = max_body_bytes or MAX_BODY_BYTES
    # HttpServer.stop() sets it; open event streams then end.
    app.state.closing = asyncio.Event()
    return app
