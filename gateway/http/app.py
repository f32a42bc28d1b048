"""The HTTP/SSE app: the LangGraph Agent Server's API over the gateway's run core."""

from __future__ import annotations

import asyncio

import langgraph.version
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import __version__
from gateway.core.gateway import Gateway
from gateway.http import _assistants, _runs, _threads
from gateway.http._auth import ApiKeyMiddleware
from gateway.http._backend import Backend
from gateway.http._errors import http_exception
from gateway.http._local import LocalBackend
from gateway.http._objects import info
from gateway.http._utils import MAX_BODY_BYTES, json_response

# The headers the SDKs read, readable by browser clients too.
_EXPOSED = ["Location", "Content-Location", "X-Pagination-Total", "X-Pagination-Next"]


async def ok(request: Request) -> Response:
    return json_response({"ok": True})


async def get_info(request: Request) -> Response:
    return json_response(info(__version__, langgraph.version.__version__))


def build_app(backend: Backend, *, api_key: str | None = None, max_body_bytes: int | None = None) -> Starlette:
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
            *_assistants.routes,
        ],
        middleware=middleware,
        exception_handlers={HTTPException: http_exception},
    )
    app.state.backend = backend
    app.state.max_body_bytes = max_body_bytes or MAX_BODY_BYTES
    # HttpServer.stop() sets it; open event streams then end.
    app.state.closing = asyncio.Event()
    return app


def create_app(gateway: Gateway, *, api_key: str | None = None, max_body_bytes: int | None = None) -> Starlette:
    return build_app(LocalBackend(gateway), api_key=api_key, max_body_bytes=max_body_bytes)
