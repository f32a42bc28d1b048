"""The gateway's batched streams as SSE bytes: the events that were ready together travel in one
message and go out in one write, their payloads as the JSON text they came in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from langgraph.gateway.v1 import runs_pb2, threads_pb2

from gateway.bridge.errors import raise_for_status
from gateway.http._sse import frame
from gateway.shared.outcome import Outcome
from gateway.shared.serde import dumps
from gateway.wire.events import PAYLOAD_CASES, event_name, payload_event_name


def _sse_frame(msg: runs_pb2.RunEvent) -> bytes | None:
    """One RunEvent as an SSE frame; the payload text goes in as it came."""
    case = msg.WhichOneof("event")
    if case in PAYLOAD_CASES:
        name, data = payload_event_name(msg, case), getattr(msg, case).json
    elif case == "metadata":
        return frame("metadata", dumps({"run_id": msg.metadata.run_id, "attempt": msg.metadata.attempt}), msg.event_id)
    elif case == "error":
        return frame("error", dumps({"error": msg.error.error, "message": msg.error.message}), msg.event_id)
    else:  # end, or a case newer than this bridge
        return None
    return frame(event_name(name, msg.namespace), data.encode(), msg.event_id)


def _batch_frames(batch: runs_pb2.RunEventBatch) -> bytes:
    return b"".join(chunk for msg in batch.events if (chunk := _sse_frame(msg)) is not None)


async def run_frames(
    call: grpc.aio.UnaryStreamCall[Any, runs_pb2.RunEventBatch], first: runs_pb2.RunEventBatch | None = None
) -> AsyncIterator[bytes]:
    """The SSE bytes of a batched run stream: one chunk per batch, as the events came ready."""
    try:
        if first is not None and (chunk := _batch_frames(first)):
            yield chunk
        while (batch := await call.read()) is not grpc.aio.EOF:
            if chunk := _batch_frames(batch):
                yield chunk
    except grpc.aio.AioRpcError as exc:
        raise_for_status(exc)
    finally:
        call.cancel()


async def thread_frames(call: grpc.aio.UnaryStreamCall[Any, threads_pb2.ThreadEventBatch]) -> AsyncIterator[bytes]:
    try:
        while (batch := await call.read()) is not grpc.aio.EOF:
            yield b"".join(frame(e.event, e.data_json.encode(), e.event_id) for e in batch.events)
    except grpc.aio.AioRpcError as exc:
        raise_for_status(exc)
    finally:
        call.cancel()


async def result_of(call: Any, first: runs_pb2.RunEventBatch) -> bytes:
    """A stateless run's outcome from its stream, as the core tells it (gateway.shared.outcome);
    stateless runs keep no thread to fall back on."""
    outcome = Outcome()
    batch = first
    try:
        while batch is not grpc.aio.EOF:
            for msg in batch.events:
                case = msg.WhichOneof("event")
                if case == "error":
                    outcome.add("error", (), dumps({"error": msg.error.error, "message": msg.error.message}))
                elif case in ("values", "updates"):
                    outcome.add(case, list(msg.namespace), getattr(msg, case).json.encode())
            batch = await call.read()
    except grpc.aio.AioRpcError as exc:
        raise_for_status(exc)
    finally:
        call.cancel()
    result = outcome.result()
    return result if result is not None else b"{}"
