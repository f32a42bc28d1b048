"""Assistant routes: read, search and count assistants, and their graphs and schemas."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import InvalidArgument
from gateway.http._errors import endpoint
from gateway.http._utils import backend, json_response, pagination_headers, path_uuid, read_object, type_name


def _filters(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind, what in (("graph_id", str, "a string"), ("name", str, "a string"), ("metadata", dict, "an object")):
        value = body.get(name)
        if value is not None and not isinstance(value, kind):
            raise InvalidArgument(f"{name} must be {what}, not {type_name(value)}")
        out[name] = value or None
    return out


def _int(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidArgument(f"{name} must be an integer from {low} to {high}, not {value!r}")
    return value


@endpoint
async def get_assistant(request: Request) -> Response:
    # Only UUIDs here, as the Agent Server: graph names count only where runs are created.
    return json_response(await backend(request).get_assistant(path_uuid(request, "assistant_id")))


@endpoint
async def search_assistants(request: Request) -> Response:
    body = await read_object(request, optional=True)
    limit, offset = _int(body, "limit", 10, 1, 1000), _int(body, "offset", 0, 0, 2**31)
    found = await backend(request).search_assistants(**_filters(body), limit=limit + 1, offset=offset)
    return json_response(found[:limit], headers=pagination_headers(len(found), limit, offset))


@endpoint
async def count_assistants(request: Request) -> Response:
    body = await read_object(request, optional=True)
    return json_response(await backend(request).count_assistants(**_filters(body)))


def _xray(raw: str | None) -> bool | int:
    if not raw or raw in ("false", "False"):
        return False
    if raw in ("true", "True"):
        return True
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    raise InvalidArgument(f"xray must be true, false or a positive depth, not {raw!r}")


@endpoint
async def get_graph(request: Request) -> Response:
    xray = _xray(request.query_params.get("xray"))
    return json_response(await backend(request).assistant_graph(request.path_params["assistant_id"], xray=xray))


@endpoint
async def get_schemas(request: Request) -> Response:
    return json_response(await backend(request).assistant_schemas(request.path_params["assistant_id"]))


routes = [
    Route("/assistants/search", search_assistants, methods=["POST"]),
    Route("/assistants/count", count_assistants, methods=["POST"]),
    Route("/assistants/{assistant_id}", get_assistant, methods=["GET"]),
    Route("/assistants/{assistant_id}/graph", get_graph, methods=["GET"]),
    Route("/assistants/{assistant_id}/schemas", get_schemas, methods=["GET"]),
]
