"""x-api-key for HTTP: every route but /ok and the API's description (/openapi.json, /docs)
needs the header when the server has a key, WebSocket upgrades included, and once only
(gateway.shared.util.CREDENTIALS)."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from gateway.http._errors import error_response
from gateway.shared.util import repeated, repeated_credential

OPEN_PATHS = frozenset({"/ok", "/openapi.json", "/docs"})


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # CORS preflights carry no credentials by design; the CORS layer above answers them.
        if (
            scope["type"] not in ("http", "websocket")
            or scope["path"] in OPEN_PATHS
            or scope.get("method") == "OPTIONS"
        ):
            await self.app(scope, receive, send)
            return
        sent = next((v for k, v in scope["headers"] if k == b"x-api-key"), None)
        if (name := repeated_credential(k for k, _ in scope["headers"])) is not None:
            response = error_response(400, repeated(name, "header").message)
        elif sent is None:
            response = error_response(401, "Missing x-api-key header")
        elif not hmac.compare_digest(sent, self._key):
            response = error_response(401, "Invalid x-api-key")
        else:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            # The upgrade is refused with the response; a server that cannot send one closes
            # with 4000 + its status (4401, 4400).
            socket = WebSocket(scope, receive, send)
            if "websocket.http.response" in scope.get("extensions", {}):
                await socket.send_denial_response(response)
            else:
                await socket.close(code=4000 + response.status_code)
            return
        await response(scope, receive, send)
