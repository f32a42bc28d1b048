"""The bridge's side of custom auth: it authenticates no one itself, but forwards each request's
credentials, its headers, to the gateway as the gRPC call's metadata. The gateway's
`@auth.authenticate` then decides, once, for HTTP and gRPC clients alike, and its `@auth.on`
filters apply in the gateway's storage, which the bridge has no access to. The handler sees the
RPC's path and method (POST), not the HTTP route's."""

from __future__ import annotations

import re
from contextvars import ContextVar

from starlette.types import ASGIApp, Receive, Scope, Send

Metadata = tuple[tuple[str, str], ...]

_FORWARDED: ContextVar[Metadata] = ContextVar("gateway_forwarded", default=())
# Headers about the connection or the message rather than the caller, and names gRPC keeps.
_SKIP = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "trailer",
        "content-length",
        "content-type",
        "content-encoding",
        "accept-encoding",
        "expect",
        "http2-settings",
        "user-agent",
    }
)
_NAME = re.compile(r"[0-9a-z_.-]+")
_VALUE = re.compile(r"[\x20-\x7e]*")


def forwarded() -> Metadata:
    """The credentials of the request being served, as gRPC metadata."""
    return _FORWARDED.get()


def _metadata(headers: list[tuple[bytes, bytes]]) -> Metadata:
    out = []
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if (
            name in _SKIP
            or name.startswith(("grpc-", ":"))
            or name.endswith("-bin")
            or not _NAME.fullmatch(name)
            or not _VALUE.fullmatch(value)
        ):
            continue
        out.append((name, value))
    return tuple(out)


class ForwardCredentials:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        token = _FORWARDED.set(_metadata(scope["headers"]))
        try:
            await self.app(scope, receive, send)
        finally:
            _FORWARDED.reset(token)
