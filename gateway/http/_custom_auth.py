"""langgraph.json's `@auth.authenticate` for HTTP: every request but /ok, /info and the API's
description (/openapi.json, /docs), open on the Agent Server too, WebSocket upgrades included,
is authenticated, then served as its caller; what the handler raises is the response (401, 403,
or the status it chose), and nothing of the request runs."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson
from starlette.authentication import AuthCredentials
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from gateway.auth import AuthHandlers, acting_as
from gateway.http._errors import PayloadTooLarge, error_response, incident
from gateway.shared.errors import GatewayError
from gateway.shared.util import repeated, repeated_credential

OPEN_PATHS = frozenset({"/ok", "/info", "/openapi.json", "/docs"})


class AuthMiddleware:
    def __init__(
        self, app: ASGIApp, handlers: AuthHandlers, max_body_bytes: int, open_paths: Collection[str] = OPEN_PATHS
    ) -> None:
        self.app = app
        self._handlers = handlers
        self._max_body_bytes = max_body_bytes
        self._open = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # CORS preflights never get here: the CORS layer outside answers them.
        if scope["type"] not in ("http", "websocket") or scope["path"] in self._open:
            await self.app(scope, receive, send)
            return
        body: list[Message] = []

        async def parsed_body() -> Any:
            # Read once, for the handler, and replayed to the route below.
            size = 0
            while True:
                message = await receive()
                body.append(message)
                size += len(message.get("body", b""))
                if size > self._max_body_bytes:
                    raise PayloadTooLarge(f"Request body too large (limit: {self._max_body_bytes} bytes)")
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
            raw = b"".join(m.get("body", b"") for m in body)
            try:
                return orjson.loads(raw) if raw.strip() else None
            except orjson.JSONDecodeError:
                return None

        wants_body = self._handlers.wants_body and scope["type"] == "http"
        try:
            if (name := repeated_credential(k for k, _ in scope["headers"])) is not None:
                raise repeated(name, "header")
            caller = await self._handlers.authenticate(scope, parsed_body if wants_body else None)
        except GatewayError as exc:
            await _refuse(error_response(exc.http_status, exc.message, dict(exc.headers)), scope, receive, send)
            return
        except Exception as exc:
            where = f"authenticating {scope.get('method', 'WebSocket')} {scope['path']}"
            await _refuse(error_response(500, incident(exc, where)), scope, receive, send)
            return
        scope["user"] = caller.user
        scope["auth"] = AuthCredentials(list(caller.permissions))

        async def replay() -> Message:
            return body.pop(0) if body else await receive()

        with acting_as(caller):
            await self.app(scope, replay if body else receive, send)


async def _refuse(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await response(scope, receive, send)
        return
    # A WebSocket upgrade is refused with the response where the server can send one, else
    # closed with 4000 + the status (4401, 4403).
    socket = WebSocket(scope, receive, send)
    if "websocket.http.response" in scope.get("extensions", {}):
        await socket.send_denial_response(response)
    else:
        await socket.close(code=4000 + response.status_code)
