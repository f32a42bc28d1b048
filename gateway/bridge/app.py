"""`python -m gateway bridge`: the HTTP/SSE app (gateway.http.app) in front of a gateway's gRPC
port, with the bridge's backend (gateway.bridge.backend)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware

from gateway import __version__
from gateway.bridge.backend import RemoteBackend
from gateway.bridge.credentials import ForwardCredentials
from gateway.config.http import HttpConfig
from gateway.http._objects import info
from gateway.http.app import build_app
from gateway.process.health import Health
from gateway.shared.tls import TargetTls


def create_remote_app(
    target: str,
    *,
    tls: TargetTls | None = None,
    api_key: str | None = None,
    max_body_bytes: int | None = None,
    http: HttpConfig | None = None,
    custom_app: Starlette | None = None,
) -> tuple[Starlette, Callable[[], Awaitable[None]]]:
    """The HTTP/SSE app in front of the gateway at `target`, over TLS with `tls`; `api_key` is
    required from HTTP clients and sent to the gateway, as are every request's credentials (the
    gateway's langgraph.json auth decides). `http` and `custom_app`: langgraph.json's http section.
    Returns the app and the coroutine function that closes it."""
    backend = RemoteBackend(target, api_key=api_key, tls=tls)
    # The bridge runs no LangGraph of its own: it does not know the gateway's version of it.
    about = info(__version__, None)
    forward = [Middleware(ForwardCredentials)]
    app = build_app(
        backend,
        info=about,
        api_key=api_key,
        max_body_bytes=max_body_bytes,
        http=http,
        auth=forward,
        custom_app=custom_app,
        health=Health({"gateway": backend.ping}),
    )
    return app, backend.close
