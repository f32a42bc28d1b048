"""Thread routes: threads, their state and history, and the thread stream."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http._errors import endpoint
from gateway.http._sse import event_stream, guarded
from gateway.http._utils import (
    INT32_MAX,
    backend,
    idempotency_key,
    json_response,
    pagination_headers,
    path_uuid,
    query_int,
    read_object,
    type_name,
)
from gateway.shared.errors import InvalidArgument
from gateway.shared.run_body import checkpoint_ref
from gateway.shared.util import is_uuid


def _get(body: dict[str, Any], name: str, kind: type, what: str) -> Any:
    value = body.get(name)
    if value is None:
        if name in body:
            raise InvalidArgument(f"{name} must be {what}, not null")
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise InvalidArgument(f"{name} must be {what}, not {type_name(value)}")
    return value


def _thread_ids(body: dict[str, Any], name: str) -> list[str] | None:
    ids = _get(body, name, list, "an array of thread ids")
    for i, item in enumerate(ids or ()):
        if not isinstance(item, str):
            raise InvalidArgument(f"{name}[{i}] must be a thread id, not {type_name(item)}")
        if not is_uuid(item):
            raise InvalidArgument(f"Invalid thread ID {name}[{i}]: must be a UUID")
    return ids


def _limit(body: dict[str, Any], default: int) -> int:
    limit = _get(body, "limit", int, "an integer")
    if limit is None:
        return default
    if not 1 <= limit <= 1000:
        raise InvalidArgument(f"limit must be between 1 and 1000, not {limit}")
    return int(limit)


def _offset(body: dict[str, Any]) -> int:
    offset = _get(body, "offset", int, "an integer") or 0
    if not 0 <= offset <= INT32_MAX:
        raise InvalidArgument(f"offset must be an integer from 0 to {INT32_MAX}, not {offset}")
    return int(offset)


@endpoint
async def create_thread(request: Request) -> Response:
    body = await read_object(request, optional=True)
    thread_id = _get(body, "thread_id", str, "a UUID")
    if_exists = _get(body, "if_exists", str, "'raise' or 'do_nothing'") or "raise"
    metadata = _get(body, "metadata", dict, "an object") or {}
    thread = await backend(request).create_thread(thread_id, metadata, if_exists, request_id=idempotency_key(request))
    return json_response(thread)


@endpoint
async def get_thread(request: Request) -> Response:
    return json_response(await backend(request).get_thread(path_uuid(request, "thread_id")))


@endpoint
async def patch_thread(request: Request) -> Response:
    thread_id = path_uuid(request, "thread_id")
    body = await read_object(request, optional=True)
    metadata = _get(body, "metadata", dict, "an object") or {}
    thread = await backend(request).patch_thread(thread_id, metadata)
    if request.headers.get("prefer") == "return=minimal":
        return Response(status_code=204)
    return json_response(thread)


@endpoint
async def delete_thread(request: Request) -> Response:
    await backend(request).delete_thread(path_uuid(request, "thread_id"))
    return Response(status_code=204)


@endpoint
async def copy_thread(request: Request) -> Response:
    return json_response(await backend(request).copy_thread(path_uuid(request, "thread_id")))


@endpoint
async def prune_threads(request: Request) -> Response:
    body = await read_object(request)
    thread_ids = _thread_ids(body, "thread_ids")
    if thread_ids is None:
        raise InvalidArgument("thread_ids must be an array of thread ids")
    strategy = _get(body, "strategy", str, "'delete' or 'keep_latest'") or "delete"
    pruned = await backend(request).prune_threads(thread_ids, strategy=strategy)
    return json_response({"pruned_count": pruned})


def _filters(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": _get(body, "metadata", dict, "an object") or None,
        "status": _get(body, "status", str, "a thread status"),
        "values": _get(body, "values", dict, "an object") or None,
    }


@endpoint
async def search_threads(request: Request) -> Response:
    body = await read_object(request, optional=True)
    limit, offset = _limit(body, 10), _offset(body)
    ids = _thread_ids(body, "ids")
    found = await backend(request).search_threads(
        **_filters(body),
        ids=ids,
        sort_by=_get(body, "sort_by", str, "a thread field"),
        sort_order=_get(body, "sort_order", str, "'asc' or 'desc'"),
        limit=limit + 1,
        offset=offset,
    )
    return json_response(found[:limit], headers=pagination_headers(len(found), limit, offset))


@endpoint
async def count_threads(request: Request) -> Response:
    body = await read_object(request, optional=True)
    return json_response(await backend(request).count_threads(**_filters(body)))


@endpoint
async def get_state(request: Request) -> Response:
    thread_id = path_uuid(request, "thread_id")
    checkpoint_id = request.path_params.get("checkpoint_id")
    # As the Agent Server, only "true"/"True" count: the SDK sends subgraphs=false by default.
    subgraphs = request.query_params.get("subgraphs") in ("true", "True")
    checkpoint = {"checkpoint_id": checkpoint_id} if checkpoint_id else None
    return json_response(await backend(request).thread_state(thread_id, checkpoint=checkpoint, subgraphs=subgraphs))


@endpoint
async def get_state_at_checkpoint(request: Request) -> Response:
    thread_id = path_uuid(request, "thread_id")
    body = await read_object(request)
    if "checkpoint" not in body:
        raise InvalidArgument("checkpoint is required")
    checkpoint = checkpoint_ref(body)
    subgraphs = bool(_get(body, "subgraphs", bool, "a boolean"))
    return json_response(await backend(request).thread_state(thread_id, checkpoint=checkpoint, subgraphs=subgraphs))


@endpoint
async def update_state(request: Request) -> Response:
    thread_id = path_uuid(request, "thread_id")
    body = await read_object(request)
    values = body.get("values")
    if values is not None and not isinstance(values, (dict, list)):
        raise InvalidArgument(f"values must be an object, an array or null, not {type_name(values)}")
    checkpoint = checkpoint_ref(body) or {}
    if checkpoint_id := _get(body, "checkpoint_id", str, "a checkpoint id"):
        checkpoint["checkpoint_id"] = checkpoint_id
    result = await backend(request).update_thread_state(
        thread_id, values, as_node=_get(body, "as_node", str, "a node name"), checkpoint=checkpoint or None
    )
    return json_response(result)


def _before(value: Any) -> str | None:
    """A checkpoint id, as a string, {"checkpoint_id"} or {"configurable": {"checkpoint_id"}}."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        inner = value.get("configurable", value)
        if isinstance(inner, dict) and isinstance(inner.get("checkpoint_id"), str):
            return str(inner["checkpoint_id"])
    raise InvalidArgument('before must be a checkpoint id or {"configurable": {"checkpoint_id": ...}}')


@endpoint
async def get_history(request: Request) -> Response:
    thread_id = path_uuid(request, "thread_id")
    states = await backend(request).thread_history(
        thread_id,
        limit=query_int(request, "limit", 1, minimum=1),
        before=request.query_params.get("before") or None,
        metadata=None,
        checkpoint=None,
    )
    return json_response(states)


@endpoint
async def post_history(request: Request) -> Response:
    thread_id = path_uuid(request, "thread_id")
    body = await read_object(request, optional=True)
    states = await backend(request).thread_history(
        thread_id,
        limit=_limit(body, 1),
        before=_before(body.get("before")),
        metadata=_get(body, "metadata", dict, "an object") or None,
        checkpoint=checkpoint_ref(body) or None,
    )
    return json_response(states)


@endpoint
async def thread_stream(request: Request) -> Response:
    thread_id = path_uuid(request, "thread_id")
    # The API's key is `stream_modes` (comma-separated); the Python SDK sends `stream_mode`,
    # which the Agent Server ignores. Here it counts when `stream_modes` is absent.
    modes = request.query_params.getlist("stream_modes") or request.query_params.getlist("stream_mode")
    body = await backend(request).thread_stream(
        thread_id, last_event_id=request.headers.get("last-event-id") or None, modes=[m for m in modes if m]
    )
    return event_stream(guarded(body, request.url.path))


routes = [
    Route("/threads", create_thread, methods=["POST"]),
    Route("/threads/search", search_threads, methods=["POST"]),
    Route("/threads/count", count_threads, methods=["POST"]),
    Route("/threads/prune", prune_threads, methods=["POST"]),
    Route("/threads/{thread_id}", get_thread, methods=["GET"]),
    Route("/threads/{thread_id}", patch_thread, methods=["PATCH"]),
    Route("/threads/{thread_id}", delete_thread, methods=["DELETE"]),
    Route("/threads/{thread_id}/state", get_state, methods=["GET"]),
    Route("/threads/{thread_id}/state", update_state, methods=["POST"]),
    Route("/threads/{thread_id}/state/checkpoint", get_state_at_checkpoint, methods=["POST"]),
    Route("/threads/{thread_id}/state/{checkpoint_id}", get_state, methods=["GET"]),
    Route("/threads/{thread_id}/history", get_history, methods=["GET"]),
    Route("/threads/{thread_id}/history", post_history, methods=["POST"]),
    Route("/threads/{thread_id}/stream", thread_stream, methods=["GET"]),
    Route("/threads/{thread_id}/copy", copy_thread, methods=["POST"]),
]
