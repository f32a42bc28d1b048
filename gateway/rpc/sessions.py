"""SessionsService: the thread protocol as one bidirectional call per thread session. The
session itself (subscriptions, commands, the thread's events) is the core's
(gateway.core.protocol_stream); this servicer reads commands, writes results and events in
order, and ends the call with a status when the session's stream fails."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
from langgraph.gateway.v1 import sessions_pb2, sessions_pb2_grpc

from gateway.core.gateway import Gateway
from gateway.core.protocol_stream import Session, ThreadProtocol
from gateway.rpc import status
from gateway.rpc.malformed import MalformedRequest
from gateway.rpc.servicers import abort_with
from gateway.shared.errors import GatewayError, InvalidArgument, shown
from gateway.shared.protocol import Frame, ProtocolError, SessionFailed
from gateway.shared.util import is_uuid
from gateway.wire.protocol import command_from_proto, frame_to_proto, reply_to_proto

logger = logging.getLogger("gateway.rpc")

# The gRPC status and the ErrorInfo reason a failed session ends with, by the protocol's error
# code.
_FAILED = {
    "expired": (grpc.StatusCode.OUT_OF_RANGE, "EVENTS_EXPIRED"),
    "resource_exhausted": (grpc.StatusCode.RESOURCE_EXHAUSTED, "SUBSCRIBER_TOO_SLOW"),
    "unavailable": (grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE"),
    "not_found": (grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
    "unauthenticated": (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
    "permission_denied": (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED"),
}
# A batch of events stops growing past this much payload.
_BATCH_BYTES = 1024 * 1024


def _events(frames: list[Frame]) -> list[sessions_pb2.SessionResponse]:
    out: list[sessions_pb2.SessionResponse] = []
    size = _BATCH_BYTES
    for frame in frames:
        if size >= _BATCH_BYTES:
            out.append(sessions_pb2.SessionResponse())
            size = 0
        frame_to_proto(frame, out[-1].events.events.add())
        size += len(frame.data)
    return out


class SessionsService(sessions_pb2_grpc.SessionsServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self._protocol = ThreadProtocol.of(gateway)

    async def ThreadSession(
        self, request_iterator: AsyncIterator[sessions_pb2.SessionRequest], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[sessions_pb2.SessionResponse]:
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None:
            return
        invalid = grpc.StatusCode.INVALID_ARGUMENT
        if isinstance(first, MalformedRequest):
            await status.abort(context, invalid, first.message, "INVALID_ARGUMENT")
        if first.WhichOneof("command") != "open":
            message = "the first request of a session must be open"
            await status.abort(context, invalid, message, "INVALID_ARGUMENT", violations=[("open", message)])
        thread_id = first.open.thread_id
        if not is_uuid(thread_id):
            message = f"open.thread_id {shown(thread_id)} is not a UUID"
            await status.abort(context, invalid, message, "INVALID_ARGUMENT", violations=[("open.thread_id", message)])
        try:
            session = await self._protocol.session(thread_id, dedupe=False)
        except GatewayError as exc:
            await abort_with(context, exc)
        reader = asyncio.create_task(self._read(requests, session), name=f"session-{thread_id}")
        try:
            opened = sessions_pb2.SessionResponse()
            opened.result.id = first.id
            opened.result.opened.thread_id = thread_id
            yield opened
            async for item in session.items():
                if isinstance(item, list):
                    for response in _events(item):
                        yield response
                elif isinstance(item, SessionFailed):
                    code, reason = _FAILED.get(item.code, (grpc.StatusCode.INTERNAL, "INTERNAL"))
                    await status.abort(
                        context,
                        code,
                        item.message,
                        reason,
                        metadata={"thread_id": thread_id},
                        retry_after=1.0 if code == grpc.StatusCode.UNAVAILABLE else None,
                    )
                else:
                    yield item
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await session.close()

    async def _read(self, requests: AsyncIterator[Any], session: Session) -> None:
        """Commands, one after the other: a subscription's result waits for its replay, and
        everything after it waits too, as on the protocol's WebSocket."""
        try:
            async for request in requests:
                await session.send_reply(await self._execute(request, session))
            # The client is done sending: the call ends once the thread's runs have.
            await session.drain()
        except asyncio.CancelledError:
            raise
        except Exception:
            incident = uuid.uuid4().hex[:12]
            logger.exception("internal error %s in a thread session", incident)
            await session.send_reply(SessionFailed("internal", f"internal error (incident {incident})"))

    async def _execute(self, request: Any, session: Session) -> sessions_pb2.SessionResponse:
        if isinstance(request, MalformedRequest):
            return _error(0, "invalid_argument", request.message)
        try:
            command = command_from_proto(request)
        except ProtocolError as exc:
            return _error(request.id, exc.code, exc.message)
        except InvalidArgument as exc:
            # A JSON field the gateway could not send back (NaN, nested too deep).
            return _error(request.id, "invalid_argument", exc.message)
        return reply_to_proto(command, await session.execute(command))


def _error(cmd_id: int, code: str, message: str) -> sessions_pb2.SessionResponse:
    response = sessions_pb2.SessionResponse()
    response.error.id, response.error.code, response.error.message = cmd_id, code, message
    return response
