"""Server-sent events as the LangGraph Agent Server writes them, and the response that streams
them: a fixed heartbeat ticker, and the body raced against the client's disconnect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.http._errors import error_event_payload
from gateway.http._utils import iterating

HEARTBEAT = b": heartbeat\r\n\r\n"
HEARTBEAT_INTERVAL = 5.0
SSE_HEADERS = {"cache-control": "no-store", "connection": "keep-alive", "x-accel-buffering": "no"}


def frame(name: str, data: bytes, event_id: str | None = None) -> bytes:
    # `data` is compact JSON as the core encoded it: never a raw CR or LF, so one `data:` line.
    # Field order is event, data, id, and lines end in CRLF, byte for byte as the reference.
    if event_id is None:
        return b"event: " + name.encode() + b"\r\ndata: " + data + b"\r\n\r\n"
    return b"event: " + name.encode() + b"\r\ndata: " + data + b"\r\nid: " + event_id.encode() + b"\r\n\r\n"


async def guarded(body: AsyncIterator[bytes], where: str) -> AsyncIterator[bytes]:
    """Once the headers are out, a failure can only be told as a last `error` event."""
    try:
        async with iterating(body) as chunks:
            async for chunk in chunks:
                yield chunk
    except Exception as exc:
        yield frame("error", error_event_payload(exc, where))


class KeepAliveStream(Response):
    """Streams `body`, writing `ping` every `interval` seconds from the start of the response
    (a fixed ticker, not reset by data), and stops the moment the client disconnects.

    `on_disconnect` runs when the client left before the body ended; it must not block."""

    def __init__(
        self,
        body: AsyncIterator[bytes],
        *,
        media_type: str,
        ping: bytes,
        headers: Mapping[str, str] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        interval: float = HEARTBEAT_INTERVAL,
    ) -> None:
        self.body_iterator = body
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.ping = ping
        self.interval = interval
        self.on_disconnect = on_disconnect
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lock = asyncio.Lock()
        state = {"done": False, "disconnected": False}

        async def stream() -> None:
            try:
                async with iterating(self.body_iterator) as body:
                    async for chunk in body:
                        async with lock:
                            await send({"type": "http.response.body", "body": chunk, "more_body": True})
                async with lock:
                    state["done"] = True
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                state["disconnected"] = True

        async def heartbeat() -> None:
            while True:
                await anyio.sleep(self.interval)
                async with lock:
                    if state["done"]:
                        return
                    await send({"type": "http.response.body", "body": self.ping, "more_body": True})

        async def listen() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    state["disconnected"] = not state["done"]
                    return

        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        # Set when the server stops: streams that would never end (thread streams) end cleanly.
        closing: asyncio.Event | None = getattr(getattr(scope.get("app"), "state", None), "closing", None)
        try:
            async with anyio.create_task_group() as group:

                async def first_to_end(func: Callable[[], Awaitable[object]]) -> None:
                    await func()
                    group.cancel_scope.cancel()

                group.start_soon(first_to_end, stream)
                group.start_soon(heartbeat)
                if closing is not None:
                    group.start_soon(first_to_end, closing.wait)
                await first_to_end(listen)
            if not state["done"] and not state["disconnected"]:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            state["disconnected"] = True
        if state["disconnected"] and self.on_disconnect is not None:
            self.on_disconnect()


def event_stream(
    body: AsyncIterator[bytes],
    *,
    headers: Mapping[str, str] | None = None,
    on_disconnect: Callable[[], None] | None = None,
) -> KeepAliveStream:
    return KeepAliveStream(
        body,
        media_type="text/event-stream",
        ping=HEARTBEAT,
        headers={**(headers or {}), **SSE_HEADERS},
        on_disconnect=on_disconnect,
    )


def json_keepalive(
    body: AsyncIterator[bytes],
    *,
    headers: Mapping[str, str] | None = None,
    on_disconnect: Callable[[], None] | None = None,
) -> KeepAliveStream:
    # Leading whitespace is ignored by JSON parsers; the newlines keep proxies from timing out.
    return KeepAliveStream(
        body, media_type="application/json", ping=b"\n", headers=headers, on_disconnect=on_disconnect
    )
