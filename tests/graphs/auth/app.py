"""A user's own Starlette app, served beside the API: its routes win over the API's, and its
middleware says whether auth had run before it (the `x-seen-user` header)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Tag:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = getattr(scope.get("user"), "identity", "-")

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-seen-user", seen.encode()))
            await send(message)

        await self.app(scope, receive, tagged)


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


async def shadow_info(request: Request) -> JSONResponse:
    return JSONResponse({"info": "the app's own"})


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"identity": getattr(request.scope.get("user"), "identity", None)})


app = Starlette(
    routes=[Route("/custom/hello", hello), Route("/custom/whoami", whoami), Route("/info", shadow_info)],
    middleware=[Middleware(Tag)],
)
