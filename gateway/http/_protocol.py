"""The thread protocol's routes, as the LangGraph SDKs' `threads.stream()` uses them: commands
on `POST /threads/{id}/commands`, a filtered SSE subscription on `POST /threads/{id}/stream/events`,
and commands and events on one WebSocket on that same path. What they carry is
gateway.shared.protocol's; where it comes from is the backend's session (the run core, or a gRPC
session through the bridge)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected, WebSocketState

from gateway.http._backend import ProtocolSession
from gateway.http._errors import endpoint, error_response, incident
from gateway.http._sse import HEARTBEAT, SSE_HEADERS, KeepAliveStream, frame
from gateway.http._utils import backend, json_response, path_uuid, read_body
from gateway.shared.errors import GatewayError, shown
from gateway.shared.protocol import (
    ProtocolError,
    SessionFailed,
    command_id,
    error_code,
    failure,
    parse_command,
    parse_filter,
    parse_since,
)
from gateway.shared.util import digits, id_part, is_uuid

_GONE = (WebSocketDisconnect, WebSocketDisconnected, OSError)


async def _json_body(request: Request) -> object:
    try:
        return orjson.loads(await read_body(request))
    except orjson.JSONDecodeError:
        raise ProtocolError("invalid_argument", "Invalid JSON body") from None


@endpoint
async def commands(request: Request) -> Response:
    thread_id = path_uuid(request, "thread_id")
    try:
        payload = await _json_body(request)
    except ProtocolError as exc:
        return error_response(400, exc.message)
    try:
        command = parse_command(payload)
    except ProtocolError as exc:
        # A command that fails is answered; a body that is not a command at all is refused,
        # with the protocol's error and the API's `detail` both.
        reply = failure(command_id(payload), exc.code, exc.message)
        if command_id(payload) is not None and isinstance(payload, dict) and "method" in payload:
            return json_response(reply)
        return json_response({**reply, "detail": exc.message}, 400)
    return json_response(await backend(request).protocol_command(thread_id, command))


async def _sse(session: ProtocolSession) -> AsyncIterator[bytes]:
    async for item in session.items():
        if isinstance(item, list):
            # The SSE id is the event's seq, what `since` resumes after.
            yield b"".join(frame(f.method, f.envelope(), str(f.seq)) for f in item)
        elif isinstance(item, SessionFailed):
            yield frame("error", orjson.dumps(item.to_json()))
            return


class _SessionEvents(KeepAliveStream):
    """The session's events as SSE. The session is closed however the response ends, the
    client gone before its body started included: its subscriptions would otherwise stay on
    the thread and, once nothing reads them, hold its runs back."""

    def __init__(self, session: ProtocolSession) -> None:
        super().__init__(_sse(session), media_type="text/event-stream", ping=HEARTBEAT, headers=SSE_HEADERS)
        self._session = session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._session.close()


@endpoint
async def stream_events(request: Request) -> Response:
    thread_id = path_uuid(request, "thread_id")
    try:
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise ProtocolError(
                "invalid_argument", "the body must be an object: {channels, namespaces?, depth?, since?}"
            )
        wanted = parse_filter(body)
        since = parse_since(body)
    except ProtocolError as exc:
        return error_response(400, exc.message)
    if since is None and (last := request.headers.get("last-event-id", "").strip()) and digits(last):
        # A resume by the SSE standard's header: the ids are the events' seqs, as `since` (uint64).
        since = id_part(last, last, "last-event-id", 2**64 - 1)
    session = await backend(request).protocol_session(thread_id)
    try:
        await session.subscribe(wanted, since)
    except BaseException:
        await session.close()
        raise
    return _SessionEvents(session)


async def _send_items(websocket: WebSocket, session: ProtocolSession) -> None:
    async for item in session.items():
        if isinstance(item, list):
            for f in item:
                await websocket.send_text(f.envelope().decode())
        elif isinstance(item, SessionFailed):
            await websocket.send_text(orjson.dumps(item.to_json()).decode())
            await websocket.close(code=1011, reason=item.message[:120])
            return
        else:
            await websocket.send_text(orjson.dumps(item).decode())


async def _receive_commands(websocket: WebSocket, session: ProtocolSession) -> None:
    while True:
        text = await websocket.receive_text()
        try:
            payload = orjson.loads(text)
        except orjson.JSONDecodeError:
            await session.send_reply(failure(None, "invalid_argument", "Protocol commands must be valid JSON."))
            continue
        try:
            command = parse_command(payload)
        except ProtocolError as exc:
            await session.send_reply(failure(command_id(payload), exc.code, exc.message))
            continue
        await session.send_reply(await session.execute(command))


async def socket(websocket: WebSocket) -> None:
    thread_id = websocket.path_params["thread_id"]
    if not is_uuid(thread_id):
        message = f"thread_id {shown(thread_id)} is not a UUID"
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(error_response(422, message))
        else:
            # 4000 + the HTTP status: the SDKs do not retry a 4xx.
            await websocket.close(code=4422, reason=message)
        return
    await websocket.accept()
    try:
        session = await websocket.app.state.backend.protocol_session(thread_id)
    except GatewayError as exc:
        await websocket.close(code=4000 + exc.http_status, reason=exc.message[:120])
        return
    closing: asyncio.Event = websocket.app.state.closing
    tasks = [
        asyncio.create_task(_send_items(websocket, session)),
        asyncio.create_task(_receive_commands(websocket, session)),
        asyncio.create_task(_until(closing)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            failed = task.exception() if task.done() and not task.cancelled() else None
            # The client left (or its socket broke): nothing to tell anyone.
            if failed is not None and not isinstance(failed, _GONE):
                raise failed
    except Exception as error:
        code = error_code(error) if isinstance(error, GatewayError) else "internal"
        where = f"WebSocket {websocket.url.path}"
        message = error.message if isinstance(error, GatewayError) else incident(error, where)
        with contextlib.suppress(Exception):
            await websocket.send_text(orjson.dumps(failure(None, code, message)).decode())
            await websocket.close(code=1011)
    finally:
        shutting_down = closing.is_set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()
        if shutting_down and websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close(code=1001, reason="the server is shutting down")


async def _until(event: asyncio.Event) -> None:
    await event.wait()


routes = [
    Route("/threads/{thread_id}/commands", commands, methods=["POST"]),
    Route("/threads/{thread_id}/stream/events", stream_events, methods=["POST"]),
    WebSocketRoute("/threads/{thread_id}/stream/events", socket),
]
