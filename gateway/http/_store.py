"""The store routes, as the LangGraph Agent Server serves them: put (204), get (the item, or
null), delete (204), search (`{"items": [...]}`) and list namespaces (`{"namespaces": [...]}`).
A malformed field is 422 naming it; what the store refuses (an empty namespace, a reserved
label, an unknown filter operator) is 400."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http._errors import endpoint
from gateway.http._utils import INT32_MAX, backend, json_response, read_object, type_name
from gateway.shared.errors import BadRequest, InvalidArgument


def _namespace(body: dict[str, Any], name: str, *, required: bool = False) -> list[str] | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidArgument(f"{name} is required: a list of labels")
        return None
    if not isinstance(value, list) or not all(isinstance(label, str) for label in value):
        raise InvalidArgument(f"{name} must be a list of strings, not {type_name(value)}")
    return value


def _string(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidArgument(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string, not {type_name(value)}")
    return value


def _int(body: dict[str, Any], name: str, default: int | None) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{name} must be an integer, not {type_name(value)}")
    if not 0 <= value <= INT32_MAX:
        raise InvalidArgument(f"{name} must be an integer from 0 to {INT32_MAX}, not {value}")
    return value


def _bool(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise InvalidArgument(f"{name} must be a boolean, not {type_name(value)}")
    return value


@endpoint
async def put_item(request: Request) -> Response:
    body = await read_object(request)
    value = body.get("value")
    if not isinstance(value, dict):
        raise InvalidArgument(f"value must be an object, not {type_name(value)}")
    index = body.get("index")
    if (
        index is not None
        and index is not False
        and not (isinstance(index, list) and all(isinstance(path, str) for path in index))
    ):
        raise InvalidArgument(f"index must be false, a list of field paths, or null, not {type_name(index)}")
    ttl = body.get("ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))):
        raise InvalidArgument(f"ttl must be a number of minutes, not {type_name(ttl)}")
    await backend(request).store.put(
        _namespace(body, "namespace", required=True) or [],
        _string(body, "key", required=True) or "",
        value,
        index=index,
        ttl=ttl,
    )
    return Response(status_code=204)


@endpoint
async def get_item(request: Request) -> Response:
    params = request.query_params
    # The labels joined by periods, which labels may not contain.
    namespace = params.get("namespace", "").split(".")
    key = params.get("key")
    if not key:
        raise BadRequest("Key is required")
    refresh = params.get("refresh_ttl")
    item = await backend(request).store.get(
        namespace, key, refresh_ttl=refresh.lower() == "true" if refresh is not None else None
    )
    return json_response(item)


@endpoint
async def delete_item(request: Request) -> Response:
    body = await read_object(request)
    await backend(request).store.delete(_namespace(body, "namespace") or [], _string(body, "key", required=True) or "")
    return Response(status_code=204)


@endpoint
async def search_items(request: Request) -> Response:
    body = await read_object(request, optional=True)
    filter = body.get("filter")
    if filter is not None and not isinstance(filter, dict):
        raise InvalidArgument(f"filter must be an object, not {type_name(filter)}")
    items = await backend(request).store.search(
        _namespace(body, "namespace_prefix") or [],
        filter=filter,
        limit=_int(body, "limit", 10) or 0,
        offset=_int(body, "offset", 0) or 0,
        query=_string(body, "query"),
        refresh_ttl=_bool(body, "refresh_ttl"),
    )
    return json_response({"items": items})


@endpoint
async def list_namespaces(request: Request) -> Response:
    body = await read_object(request, optional=True)
    namespaces = await backend(request).store.list_namespaces(
        prefix=_namespace(body, "prefix"),
        suffix=_namespace(body, "suffix"),
        max_depth=_int(body, "max_depth", None),
        limit=_int(body, "limit", 100) or 0,
        offset=_int(body, "offset", 0) or 0,
    )
    return json_response({"namespaces": namespaces})


routes = [
    Route("/store/items", put_item, methods=["PUT"]),
    Route("/store/items", get_item, methods=["GET"]),
    Route("/store/items", delete_item, methods=["DELETE"]),
    Route("/store/items/search", search_items, methods=["POST"]),
    Route("/store/namespaces", list_namespaces, methods=["POST"]),
]
