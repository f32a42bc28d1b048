"""Run routes: create, stream, join, wait, read, list and cancel runs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http._backend import RunOutcome, RunStream
from gateway.http._errors import endpoint, error_event_payload
from gateway.http._sse import event_stream, guarded, json_keepalive
from gateway.http._utils import (
    backend,
    check_fields,
    flag,
    idempotency_key,
    json_response,
    path_uuid,
    query_int,
    read_json,
    read_object,
)
from gateway.shared.errors import Conflict, GatewayError, InvalidArgument, NotFound, shown
from gateway.shared.records import RunCreate
from gateway.shared.run_body import run_create, stream_modes

RUN_STATUSES = ("pending", "running", "success", "error", "timeout", "interrupted")


def _sse(stream: RunStream, location: str, where: str) -> Response:
    # Location is where the SDKs reconnect; Content-Location is the run they check on close.
    headers = {"Location": f"{location}/stream", "Content-Location": location}
    return event_stream(guarded(stream.body, where), headers=headers, on_disconnect=stream.cancel)


def _keyed(request: Request, req: RunCreate) -> RunCreate:
    req.request_id = idempotency_key(request)
    return req


def _run_path(thread_id: str | None, run_id: str) -> str:
    return f"/threads/{thread_id}/runs/{run_id}" if thread_id else f"/runs/{run_id}"


def _result(outcome: RunOutcome, where: str) -> Response:
    async def body() -> AsyncIterator[bytes]:
        try:
            yield await outcome.result()
        except Exception as exc:
            yield b'{"__error__":' + error_event_payload(exc, where) + b"}"

    location = _run_path(outcome.thread_id, outcome.run_id)
    headers = {"Location": f"{location}/join", "Content-Location": location}
    return json_keepalive(body(), headers=headers, on_disconnect=outcome.cancel)


@endpoint
async def stream_run(request: Request) -> Response:
    body = await read_object(request)
    thread_id = path_uuid(request, "thread_id")
    stream = await backend(request).stream_run(_keyed(request, run_create(body, thread_id=thread_id, streaming=True)))
    return _sse(stream, _run_path(thread_id, stream.run_id), request.url.path)


@endpoint
async def stream_stateless_run(request: Request) -> Response:
    body = await read_object(request)
    req = _keyed(request, run_create(body, thread_id=None, streaming=True))
    stream = await backend(request).stream_run(req)
    # req.thread_id is set when the run keeps its thread: then its thread's paths work (the
    # thread of a repeat's run is the first call's).
    return _sse(stream, _run_path(req.thread_id and stream.thread_id, stream.run_id), request.url.path)


def _join_modes(request: Request) -> list[str] | None:
    """`stream_mode` as one value, a JSON array, or repeated (the union of all of them)."""
    modes: list[str] = []
    for raw in request.query_params.getlist("stream_mode"):
        if not raw:
            continue
        value = raw
        if raw.startswith("["):
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise InvalidArgument(
                    f"stream_mode: {shown(raw)} is not a stream mode or a JSON array of them"
                ) from None
        if value == []:
            continue  # an empty array, like an empty value, filters nothing
        modes.extend(m for m in stream_modes(value) if m not in modes)
    return modes or None


async def _join_stream(request: Request, thread_id: str | None) -> Response:
    run_id = path_uuid(request, "run_id")
    stream = await backend(request).join_stream(
        thread_id,
        run_id,
        last_event_id=request.headers.get("last-event-id") or None,
        modes=_join_modes(request),
        cancel_on_disconnect=flag(request.query_params.get("cancel_on_disconnect")),
    )
    return _sse(stream, _run_path(thread_id, run_id), request.url.path)


@endpoint
async def join_stream(request: Request) -> Response:
    return await _join_stream(request, path_uuid(request, "thread_id"))


@endpoint
async def join_stateless_stream(request: Request) -> Response:
    # The Location of a stateless run's stream: the Agent Server has no route here.
    return await _join_stream(request, None)


@endpoint
async def create_run(request: Request) -> Response:
    body = await read_object(request)
    thread_id = path_uuid(request, "thread_id")
    run = await backend(request).create_run(_keyed(request, run_create(body, thread_id=thread_id, streaming=False)))
    return json_response(run, headers={"Content-Location": _run_path(thread_id, run["run_id"])})


@endpoint
async def create_stateless_run(request: Request) -> Response:
    body = await read_object(request)
    req = _keyed(request, run_create(body, thread_id=None, streaming=False))
    run = await backend(request).create_run(req)
    location = _run_path(req.thread_id and run["thread_id"], run["run_id"])
    return json_response(run, headers={"Content-Location": location})


@endpoint
async def create_run_batch(request: Request) -> Response:
    body = await read_json(request)
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        raise InvalidArgument("the request body must be an array of run-create objects")
    reqs = []
    for index, item in enumerate(body):
        try:
            check_fields(item)
            reqs.append(run_create(item, thread_id=None, streaming=False))
        except GatewayError as exc:
            exc.message = f"run {index}: {exc.message}"
            raise
    return json_response(await backend(request).create_runs(reqs))


@endpoint
async def delete_run(request: Request) -> Response:
    await backend(request).delete_run(path_uuid(request, "thread_id"), path_uuid(request, "run_id"))
    return Response(status_code=204)


@endpoint
async def wait_run(request: Request) -> Response:
    body = await read_object(request)
    thread_id = path_uuid(request, "thread_id")
    outcome = await backend(request).wait_run(_keyed(request, run_create(body, thread_id=thread_id, streaming=True)))
    return _result(outcome, request.url.path)


@endpoint
async def wait_stateless_run(request: Request) -> Response:
    body = await read_object(request)
    outcome = await backend(request).wait_run(_keyed(request, run_create(body, thread_id=None, streaming=True)))
    return _result(outcome, request.url.path)


@endpoint
async def join_run(request: Request) -> Response:
    outcome = await backend(request).join_run(
        path_uuid(request, "thread_id"),
        path_uuid(request, "run_id"),
        cancel_on_disconnect=flag(request.query_params.get("cancel_on_disconnect")),
    )
    return _result(outcome, request.url.path)


@endpoint
async def get_run(request: Request) -> Response:
    run = await backend(request).get_run(path_uuid(request, "thread_id"), path_uuid(request, "run_id"))
    return json_response(run)


@endpoint
async def list_runs(request: Request) -> Response:
    thread_id = path_uuid(request, "thread_id")
    status = request.query_params.get("status") or None
    if status is not None and status not in RUN_STATUSES:
        raise InvalidArgument(f"status: {shown(status)} is not one of {', '.join(RUN_STATUSES)}")
    runs = await backend(request).list_runs(
        thread_id,
        status=status,
        limit=query_int(request, "limit", 10, minimum=1),
        offset=query_int(request, "offset", 0),
    )
    return json_response(runs)


def _action(request: Request) -> str:
    action = request.query_params.get("action") or "interrupt"
    if action not in ("interrupt", "rollback"):
        raise InvalidArgument(f"action: {shown(action)} is not one of 'interrupt', 'rollback'")
    return action


@endpoint
async def cancel_run(request: Request) -> Response:
    thread_id, run_id = path_uuid(request, "thread_id"), path_uuid(request, "run_id")
    wait = flag(request.query_params.get("wait"))
    try:
        outcome = await backend(request).cancel_run(thread_id, run_id, action=_action(request), wait=wait)
    except Conflict as exc:
        # A run that already ended: the Agent Server answers 404 "no matching runs".
        raise NotFound(exc.message) from None
    if outcome is None:
        return Response(status_code=202)
    return _result(outcome, request.url.path)


@endpoint
async def cancel_runs(request: Request) -> Response:
    body = await read_object(request)
    action = _action(request)
    status = body.get("status")
    thread_id, run_ids = body.get("thread_id"), body.get("run_ids")
    if status is not None:
        if not isinstance(status, str) or status.lower() not in ("pending", "running", "all"):
            raise InvalidArgument(f"status: {shown(status)} is not one of 'pending', 'running', 'all'")
        if thread_id is not None or run_ids is not None:
            raise InvalidArgument("give either status, or thread_id and run_ids, not both")
        await backend(request).cancel_runs(thread_id=None, run_ids=None, status=status.lower(), action=action)
    else:
        if not isinstance(thread_id, str):
            raise InvalidArgument("thread_id is required (or status)")
        if not isinstance(run_ids, list) or not all(isinstance(r, str) for r in run_ids):
            raise InvalidArgument("run_ids must be an array of run ids")
        await backend(request).cancel_runs(thread_id=thread_id, run_ids=run_ids, status=None, action=action)
    return Response(status_code=204)


routes = [
    Route("/runs/stream", stream_stateless_run, methods=["POST"]),
    Route("/runs/wait", wait_stateless_run, methods=["POST"]),
    Route("/runs/cancel", cancel_runs, methods=["POST"]),
    Route("/runs/batch", create_run_batch, methods=["POST"]),
    Route("/runs", create_stateless_run, methods=["POST"]),
    Route("/runs/{run_id}/stream", join_stateless_stream, methods=["GET"]),
    Route("/threads/{thread_id}/runs/stream", stream_run, methods=["POST"]),
    Route("/threads/{thread_id}/runs/wait", wait_run, methods=["POST"]),
    Route("/threads/{thread_id}/runs", create_run, methods=["POST"]),
    Route("/threads/{thread_id}/runs", list_runs, methods=["GET"]),
    Route("/threads/{thread_id}/runs/{run_id}/stream", join_stream, methods=["GET"]),
    Route("/threads/{thread_id}/runs/{run_id}/join", join_run, methods=["GET"]),
    Route("/threads/{thread_id}/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
    Route("/threads/{thread_id}/runs/{run_id}", get_run, methods=["GET"]),
    Route("/threads/{thread_id}/runs/{run_id}", delete_run, methods=["DELETE"]),
]
