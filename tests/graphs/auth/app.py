"""A user's own Starlette app, served beside the API: its routes win over the API's."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


async def shadow_info(request: Request) -> JSONResponse:
    return JSONResponse({"info": "the app's own"})


app = Starlette(routes=[Route("/custom/hello", hello), Route("/info", shadow_info)])
