"""Assistant routes: create, read, update (a new version), delete, search and count assistants,
their versions, and their graphs, subgraphs and schemas."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http._errors import endpoint
from gateway.http._utils import (
    INT32_MAX,
    backend,
    body_page,
    json_response,
    pagination_headers,
    path_uuid,
    read_object,
    type_name,
)
from gateway.shared.errors import InvalidArgument, NotFound, shown
from gateway.shared.util import digits, is_uuid


def _filters(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind, what in (("graph_id", str, "a string"), ("name", str, "a string"), ("metadata", dict, "an object")):
        value = body.get(name)
        if value is not None and not isinstance(value, kind):
            raise InvalidArgument(f"{name} must be {what}, not {type_name(value)}")
        out[name] = value or None
    return out


def _field(body: dict[str, Any], name: str, kind: type, what: str) -> Any:
    value = body.get(name)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool) and kind is not bool):
        raise InvalidArgument(f"{name} must be {what}, not {type_name(value)}")
    return value


def _definition(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of an assistant a create or an update sets."""
    fields = {
        "graph_id": _field(body, "graph_id", str, "a string"),
        "config": _field(body, "config", dict, "an object"),
        "context": _field(body, "context", dict, "an object"),
        "metadata": _field(body, "metadata", dict, "an object"),
        "name": _field(body, "name", str, "a string"),
        "description": _field(body, "description", str, "a string"),
    }
    return fields


def _select(items: list[dict[str, Any]], body: dict[str, Any], allowed: tuple[str, ...]) -> list[dict[str, Any]]:
    """Only the fields `select` names, as the Agent Server answers a search with `select`."""
    select = body.get("select")
    if select is None:
        return items
    if not isinstance(select, list) or not all(isinstance(f, str) and f in allowed for f in select):
        raise InvalidArgument(f"select must be an array of fields among: {', '.join(allowed)}")
    return [{k: v for k, v in item.items() if k in select} for item in items]


_FIELDS = (
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "created_at",
    "updated_at",
    "metadata",
    "version",
)


@endpoint
async def create_assistant(request: Request) -> Response:
    body = await read_object(request)
    fields = _definition(body)
    if fields["graph_id"] is None:
        raise InvalidArgument("graph_id is required")
    assistant_id = _field(body, "assistant_id", str, "a UUID")
    if assistant_id is not None and not is_uuid(assistant_id):
        raise InvalidArgument("Invalid assistant ID: must be a UUID")
    if_exists = _field(body, "if_exists", str, "'raise' or 'do_nothing'") or "raise"
    assistant = await backend(request).create_assistant(assistant_id=assistant_id, if_exists=if_exists, **fields)
    return json_response(assistant)


@endpoint
async def patch_assistant(request: Request) -> Response:
    assistant_id = path_uuid(request, "assistant_id")
    body = await read_object(request, optional=True)
    return json_response(await backend(request).update_assistant(assistant_id, **_definition(body)))


@endpoint
async def delete_assistant(request: Request) -> Response:
    assistant_id = path_uuid(request, "assistant_id")
    delete_threads = request.query_params.get("delete_threads", "").lower() == "true"
    await backend(request).delete_assistant(assistant_id, delete_threads=delete_threads)
    return Response(status_code=204)


@endpoint
async def list_versions(request: Request) -> Response:
    assistant_id = path_uuid(request, "assistant_id")
    body = await read_object(request, optional=True)
    limit, offset = body_page(body)
    versions = await backend(request).assistant_versions(
        assistant_id, metadata=_field(body, "metadata", dict, "an object") or None, limit=limit, offset=offset
    )
    return json_response(versions)


@endpoint
async def set_latest_version(request: Request) -> Response:
    assistant_id = path_uuid(request, "assistant_id")
    body = await read_object(request, optional=True)
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise InvalidArgument(f"version must be an integer, not {type_name(version)}")
    if not 1 <= version <= INT32_MAX:
        # No such version can be: they count from 1, and gRPC carries them as int32.
        raise NotFound(
            f"Assistant {assistant_id} has no version {version}",
            resource="assistant",
            id=assistant_id,
            metadata={"version": str(version)},
        )
    return json_response(await backend(request).set_latest_assistant_version(assistant_id, version))


@endpoint
async def get_assistant(request: Request) -> Response:
    # Only UUIDs here, as the Agent Server: graph names count only where runs are created.
    return json_response(await backend(request).get_assistant(path_uuid(request, "assistant_id")))


@endpoint
async def search_assistants(request: Request) -> Response:
    body = await read_object(request, optional=True)
    limit, offset = body_page(body)
    found = await backend(request).search_assistants(
        **_filters(body),
        limit=limit + 1,
        offset=offset,
        sort_by=_field(body, "sort_by", str, "a field of an assistant"),
        sort_order=_field(body, "sort_order", str, "'asc' or 'desc'"),
    )
    shown = _select(found[:limit], body, _FIELDS)
    return json_response(shown, headers=pagination_headers(len(found), limit, offset))


@endpoint
async def count_assistants(request: Request) -> Response:
    body = await read_object(request, optional=True)
    return json_response(await backend(request).count_assistants(**_filters(body)))


def _xray(raw: str | None) -> bool | int:
    if not raw or raw in ("false", "False"):
        return False
    if raw in ("true", "True"):
        return True
    if digits(raw) and int(raw) > 0:
        return int(raw)
    raise InvalidArgument(f"xray must be true, false or a positive depth, not {shown(raw)}")


@endpoint
async def get_graph(request: Request) -> Response:
    xray = _xray(request.query_params.get("xray"))
    return json_response(await backend(request).assistant_graph(request.path_params["assistant_id"], xray=xray))


@endpoint
async def get_schemas(request: Request) -> Response:
    return json_response(await backend(request).assistant_schemas(request.path_params["assistant_id"]))


@endpoint
async def get_subgraphs(request: Request) -> Response:
    assistant_id = path_uuid(request, "assistant_id")
    recurse = request.query_params.get("recurse", "False") in ("true", "True")
    subgraphs = await backend(request).assistant_subgraphs(
        assistant_id, namespace=request.path_params.get("namespace"), recurse=recurse
    )
    return json_response(subgraphs)


routes = [
    Route("/assistants", create_assistant, methods=["POST"]),
    Route("/assistants/search", search_assistants, methods=["POST"]),
    Route("/assistants/count", count_assistants, methods=["POST"]),
    Route("/assistants/{assistant_id}/latest", set_latest_version, methods=["POST"]),
    Route("/assistants/{assistant_id}/versions", list_versions, methods=["POST"]),
    Route("/assistants/{assistant_id}", get_assistant, methods=["GET"]),
    Route("/assistants/{assistant_id}", patch_assistant, methods=["PATCH"]),
    Route("/assistants/{assistant_id}", delete_assistant, methods=["DELETE"]),
    Route("/assistants/{assistant_id}/graph", get_graph, methods=["GET"]),
    Route("/assistants/{assistant_id}/schemas", get_schemas, methods=["GET"]),
    Route("/assistants/{assistant_id}/subgraphs", get_subgraphs, methods=["GET"]),
    Route("/assistants/{assistant_id}/subgraphs/{namespace}", get_subgraphs, methods=["GET"]),
]
