"""Cron routes: schedules of runs, stateless or on a thread; search, count, update, delete."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http._errors import endpoint
from gateway.http._utils import backend, body_page, json_response, pagination_headers, path_uuid, read_object, type_name
from gateway.shared.errors import InvalidArgument
from gateway.shared.util import is_uuid

_FIELDS = (
    "cron_id",
    "assistant_id",
    "thread_id",
    "on_run_completed",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "user_id",
    "payload",
    "next_run_date",
    "metadata",
    "enabled",
)


def _field(body: dict[str, Any], name: str, kind: type, what: str) -> Any:
    value = body.get(name)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool)):
        raise InvalidArgument(f"{name} must be {what}, not {type_name(value)}")
    return value


def _id(body: dict[str, Any], name: str) -> str | None:
    value = _field(body, name, str, "a UUID")
    if value is not None and not is_uuid(value):
        raise InvalidArgument(f"Invalid {name.replace('_id', '')} ID: must be a UUID")
    return value


@endpoint
async def create_cron(request: Request) -> Response:
    body = await read_object(request)
    return json_response(await backend(request).create_cron(body, thread_id=None))


@endpoint
async def create_thread_cron(request: Request) -> Response:
    thread_id = path_uuid(request, "thread_id")
    body = await read_object(request)
    return json_response(await backend(request).create_cron(body, thread_id=thread_id))


@endpoint
async def get_cron(request: Request) -> Response:
    return json_response(await backend(request).get_cron(path_uuid(request, "cron_id")))


@endpoint
async def patch_cron(request: Request) -> Response:
    cron_id = path_uuid(request, "cron_id")
    body = await read_object(request, optional=True)
    return json_response(await backend(request).update_cron(cron_id, body))


@endpoint
async def delete_cron(request: Request) -> Response:
    await backend(request).delete_cron(path_uuid(request, "cron_id"))
    return Response(status_code=204)


@endpoint
async def search_crons(request: Request) -> Response:
    body = await read_object(request, optional=True)
    limit, offset = body_page(body)
    found = await backend(request).search_crons(
        assistant_id=_id(body, "assistant_id"),
        thread_id=_id(body, "thread_id"),
        enabled=_field(body, "enabled", bool, "a boolean"),
        metadata=_field(body, "metadata", dict, "an object") or None,
        limit=limit + 1,
        offset=offset,
        sort_by=_field(body, "sort_by", str, "a field of a cron"),
        sort_order=_field(body, "sort_order", str, "'asc' or 'desc'"),
    )
    shown = found[:limit]
    select = body.get("select")
    if select is not None:
        if not isinstance(select, list) or not all(isinstance(f, str) and f in _FIELDS for f in select):
            raise InvalidArgument(f"select must be an array of fields among: {', '.join(_FIELDS)}")
        shown = [{k: v for k, v in cron.items() if k in select} for cron in shown]
    return json_response(shown, headers=pagination_headers(len(found), limit, offset))


@endpoint
async def count_crons(request: Request) -> Response:
    body = await read_object(request, optional=True)
    count = await backend(request).count_crons(
        assistant_id=_id(body, "assistant_id"),
        thread_id=_id(body, "thread_id"),
        metadata=_field(body, "metadata", dict, "an object") or None,
    )
    return json_response(count)


routes = [
    Route("/runs/crons", create_cron, methods=["POST"]),
    Route("/runs/crons/search", search_crons, methods=["POST"]),
    Route("/runs/crons/count", count_crons, methods=["POST"]),
    Route("/runs/crons/{cron_id}", get_cron, methods=["GET"]),
    Route("/runs/crons/{cron_id}", patch_cron, methods=["PATCH"]),
    Route("/runs/crons/{cron_id}", delete_cron, methods=["DELETE"]),
    Route("/threads/{thread_id}/runs/crons", create_thread_cron, methods=["POST"]),
]
