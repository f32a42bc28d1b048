"""The bridge's thread protocol: each HTTP command, SSE subscription or WebSocket is one
SessionsService.ThreadSession call to the gateway, whose results and events it turns back
into the JSON protocol (gateway.shared.protocol), byte for byte as the gateway's own HTTP edge sends
them. Imports grpc, the stubs and the wire modules only, as the rest of the bridge."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from langgraph.gateway.v1 import sessions_pb2, sessions_pb2_grpc

from gateway.shared.errors import GatewayError, InvalidArgument, NotFound, Unauthenticated, Unavailable
from gateway.shared.protocol import Command, Filter, Frame, ProtocolError, RecentIds, SessionFailed, Subscribe, failure
from gateway.wire.protocol import command_to_proto, frame_from_proto, reply_from_proto

# The protocol's error code for a session that ended with this status.
_FAILED = {
    grpc.StatusCode.OUT_OF_RANGE: "expired",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "resource_exhausted",
    grpc.StatusCode.UNAVAILABLE: "unavailable",
    grpc.StatusCode.NOT_FOUND: "not_found",
    grpc.StatusCode.UNAUTHENTICATED: "unauthenticated",
    grpc.StatusCode.PERMISSION_DENIED: "permission_denied",
    grpc.StatusCode.INVALID_ARGUMENT: "invalid_argument",
}
_OUTBOUND = 64
# What grpc.aio's client says, as INTERNAL, of a message it wrote as the call ended: its own
# failed write, with the gateway's status lost (grpc/grpc#36066).
_LOST_STATUS = "Internal error from Core"

Item = list[Frame] | SessionFailed | Any


class _Closed:
    pass


_CLOSED = _Closed()


class RemoteSession:
    def __init__(self, stub: sessions_pb2_grpc.SessionsServiceStub, thread_id: str, metadata: Sequence[Any]) -> None:
        self.thread_id = thread_id
        self._requests: asyncio.Queue[sessions_pb2.SessionRequest | _Closed] = asyncio.Queue()
        self._call = stub.ThreadSession(self._outgoing(), metadata=metadata)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._items: asyncio.Queue[Item] = asyncio.Queue(_OUTBOUND)
        # The gateway numbers this session's commands; clients' ids come back in the replies.
        self._next_id = 1
        # Commands whose error ends the items (a stream's one subscription).
        self._ending: set[int] = set()
        self._reader: asyncio.Task[None] | None = None

    async def _outgoing(self) -> AsyncIterator[sessions_pb2.SessionRequest]:
        while not isinstance(request := await self._requests.get(), _Closed):
            yield request

    async def open(self) -> None:
        first = sessions_pb2.SessionRequest(id=0)
        first.open.thread_id = self.thread_id
        self._requests.put_nowait(first)
        try:
            opened = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            self._call.cancel()
            raise _opening_error(exc) from None
        if opened is grpc.aio.EOF or not opened.HasField("result"):
            self._call.cancel()
            raise Unavailable("the gateway closed the thread session as it opened")
        self._reader = asyncio.create_task(self._read(), name=f"bridge-session-{self.thread_id}")

    async def _read(self) -> None:
        try:
            while (msg := await self._call.read()) is not grpc.aio.EOF:
                case = msg.WhichOneof("response")
                if case == "events":
                    await self._items.put([frame_from_proto(e) for e in msg.events.events])
                else:
                    reply = reply_from_proto(msg)
                    future = self._pending.pop(int(reply["id"]), None)
                    if future is not None and not future.done():
                        future.set_result(reply)
                    if reply["type"] == "error" and int(reply["id"]) in self._ending:
                        await self._items.put(SessionFailed(str(reply["error"]), str(reply["message"])))
            failed = SessionFailed("unavailable", "the gateway ended the thread session")
        except grpc.aio.AioRpcError as exc:
            failed = session_failure(exc)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ProtocolError(failed.code, failed.message))
        self._pending.clear()
        await self._items.put(failed)

    def _send(self, command: Command) -> int:
        cmd_id = self._next_id
        self._next_id += 1
        self._requests.put_nowait(command_to_proto(Command(cmd_id, command.body)))
        return cmd_id

    async def execute(self, command: Command) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        try:
            self._pending[self._send(command)] = future
            reply = await future
        except ProtocolError as exc:
            return failure(command.id, exc.code, exc.message)
        return {**reply, "id": command.id}

    async def subscribe(self, wanted: Filter, since: int | None = None) -> object:
        """Subscribes without waiting for the result, which comes after the replay that the
        items carry meanwhile (the stream's filter was checked before); an error ends them."""
        self._ending.add(self._send(Command(0, Subscribe(wanted, since))))
        return None

    async def send_reply(self, reply: Any) -> None:
        await self._items.put(reply)

    async def items(self) -> AsyncIterator[Item]:
        # The gateway sends each subscription's events; the JSON transports send an event once.
        recent = RecentIds()
        while True:
            item = await self._items.get()
            if isinstance(item, list):
                item = [f for f in item if recent.first(f.seq)]
                if not item:
                    continue
            yield item
            if isinstance(item, SessionFailed):
                return

    async def close(self) -> None:
        self._requests.put_nowait(_CLOSED)
        self._call.cancel()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


def session_failure(exc: grpc.aio.AioRpcError) -> SessionFailed:
    """The session's end, by the status its call ended with. A command written as the gateway
    ended the session leaves grpc.aio's own INTERNAL in place of the gateway's status: that is
    the gateway ending the session, as an EOF is, not an internal error of either."""
    if exc.code() == grpc.StatusCode.INTERNAL and exc.details() == _LOST_STATUS:
        return SessionFailed("unavailable", "the gateway ended the thread session")
    return SessionFailed(_FAILED.get(exc.code(), "internal"), exc.details() or exc.code().name)


def _opening_error(exc: grpc.aio.AioRpcError) -> GatewayError:
    details = exc.details() or exc.code().name
    if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(details)
    if exc.code() == grpc.StatusCode.NOT_FOUND:
        return NotFound(details)
    if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(details)
    return Unavailable(f"the gateway refused the thread session: {details}")
