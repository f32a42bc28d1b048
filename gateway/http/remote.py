"""The HTTP/SSE routes served by a separate process that speaks gRPC to a gateway
(`python -m gateway bridge --target host:port`).

The routes and the SSE framing are the same as in-process; this module is the backend that
turns each call into RPCs. Streams use the batched RPCs, so the events that were ready together
travel in one message and go out in one write; their payloads arrive as JSON text and go into
the SSE frames as they are. Every route has its RPC: crons go through CronsService, the thread
stream through ThreadsService.JoinThreadStream. The thread protocol (commands, event streams,
WebSockets) goes through SessionsService (gateway.http._remote_session).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NoReturn

import grpc
import orjson
from google.protobuf import json_format, struct_pb2, timestamp_pb2
from grpc_health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from grpc_health.v1.health_pb2_grpc import HealthStub
from langgraph.gateway.v1 import (
    assistants_pb2,
    assistants_pb2_grpc,
    crons_pb2,
    crons_pb2_grpc,
    runs_pb2,
    runs_pb2_grpc,
    sessions_pb2_grpc,
    threads_pb2,
    threads_pb2_grpc,
)
from starlette.applications import Starlette
from starlette.middleware import Middleware

from gateway import __version__
from gateway.config.http import HttpConfig
from gateway.http._backend import Json, RunOutcome, RunStream
from gateway.http._errors import NotSupported, PayloadTooLarge
from gateway.http._forward import ForwardCredentials, Metadata, forwarded
from gateway.http._objects import info
from gateway.http._remote_session import RemoteSession
from gateway.http._remote_store import RemoteStore
from gateway.http._sse import frame
from gateway.http.app import build_app
from gateway.process import tracing
from gateway.process.health import Health
from gateway.shared.errors import (
    AlreadyExists,
    Conflict,
    EventsExpired,
    GatewayError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TooManyRuns,
    Unauthenticated,
    Unavailable,
    shown,
)
from gateway.shared.outcome import Outcome
from gateway.shared.protocol import Command, failure, session_only
from gateway.shared.records import RunCreate
from gateway.shared.serde import dumps
from gateway.wire import convert
from gateway.wire.convert import MAX_MESSAGE_BYTES, SUBSCRIBED
from gateway.wire.events import PAYLOAD_CASES, event_name, payload_event_name

logger = logging.getLogger("gateway.bridge")

_MODES = {name: value for value, name in convert.STREAM_MODE_NAMES.items()}
_ON_DISCONNECT = {"continue": runs_pb2.ON_DISCONNECT_CONTINUE, "cancel": runs_pb2.ON_DISCONNECT_CANCEL}
_IF_NOT_EXISTS = {"reject": runs_pb2.IF_NOT_EXISTS_REJECT, "create": runs_pb2.IF_NOT_EXISTS_CREATE}
_CANCEL_STATUS = {
    "pending": runs_pb2.CANCEL_STATUS_PENDING,
    "running": runs_pb2.CANCEL_STATUS_RUNNING,
    "all": runs_pb2.CANCEL_STATUS_ALL,
}
_DURABILITY = {"sync": runs_pb2.DURABILITY_SYNC, "async": runs_pb2.DURABILITY_ASYNC, "exit": runs_pb2.DURABILITY_EXIT}
# Stateless runs this bridge started, so that their Location (/runs/{run_id}/stream) can be
# joined: the gRPC API needs the temporary thread's id.
_REMEMBERED_RUNS = 1024


class UpstreamError(GatewayError):
    """The gateway behind the bridge failed in a way the HTTP API has no status for (HTTP 502)."""

    http_status = 502


class UpstreamInternal(GatewayError):
    http_status = 500


_STATUS: dict[grpc.StatusCode, type[GatewayError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: Conflict,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.UNIMPLEMENTED: NotSupported,
    # The gateway's only RESOURCE_EXHAUSTED before a stream starts is a full thread queue.
    grpc.StatusCode.RESOURCE_EXHAUSTED: TooManyRuns,
    grpc.StatusCode.OUT_OF_RANGE: EventsExpired,
    grpc.StatusCode.INTERNAL: UpstreamInternal,
}


def _raise(exc: grpc.aio.AioRpcError) -> NoReturn:
    _raise_status(exc.code(), exc.details(), exc.trailing_metadata())


def _raise_status(code: grpc.StatusCode, details: str | None, trailing: Any) -> NoReturn:
    details = details or code.name
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
        raise PayloadTooLarge(f"the request is over the gRPC message limit of {MAX_MESSAGE_BYTES} bytes") from None
    error = _STATUS.get(code, UpstreamError)(details)
    # The gateway's errors carry their HTTP status (and an auth handler's headers) in the
    # trailers: the bridge answers as the gateway's own HTTP edge would.
    trailers = dict(trailing or ())
    status = trailers.pop("x-http-status", None)
    if isinstance(status, str) and status.isdigit() and 400 <= int(status) <= 599:
        error.http_status = int(status)
        error.headers = {k: v for k, v in trailers.items() if isinstance(v, str)}
    raise error from None


def _iso(ts: timestamp_pb2.Timestamp) -> str | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToDatetime(tzinfo=UTC).isoformat()


def _fragment(text: str, default: bytes) -> orjson.Fragment:
    return orjson.Fragment(text.encode() if text else default)


def _struct(value: dict[str, Any] | None) -> struct_pb2.Struct:
    # The HTTP edge refused fields nested deeper than a Struct carries (serde.MAX_NESTING).
    return convert.dict_to_struct(value)


def _run_request(req: RunCreate) -> runs_pb2.CreateRunRequest:
    nodes = {name: getattr(req, name) for name in ("interrupt_before", "interrupt_after")}
    msg = runs_pb2.CreateRunRequest(
        assistant_id=req.assistant_id,
        thread_id=req.thread_id or "",
        stream_mode=[_MODES[m] for m in req.stream_mode],
        stream_subgraphs=req.stream_subgraphs,
        stream_resumable=req.stream_resumable,
        on_disconnect=_ON_DISCONNECT[req.on_disconnect],
        multitask_strategy=convert.MULTITASK_VALUES[req.multitask_strategy],
        if_not_exists=_IF_NOT_EXISTS[req.if_not_exists],
        interrupt_before=["*"] if nodes["interrupt_before"] == "*" else nodes["interrupt_before"] or [],
        interrupt_after=["*"] if nodes["interrupt_after"] == "*" else nodes["interrupt_after"] or [],
        checkpoint_id=req.checkpoint_id or "",
        durability=_DURABILITY[req.durability],
        keep_thread=req.on_completion == "keep",
        request_id=req.request_id or "",
    )
    with _fits("input"):
        if req.input is not None:
            json_format.ParseDict(req.input, msg.input)
    with _fits("command"):
        if req.command is not None:
            msg.command.CopyFrom(_struct(req.command))
    for name in ("config", "context", "metadata"):
        value = getattr(req, name)
        with _fits(name):
            if value:
                getattr(msg, name).CopyFrom(_struct(value))
    return msg


@contextmanager
def _fits(name: str) -> Iterator[None]:
    """A value protobuf cannot carry (nested past its recursion limit) is the client's error."""
    try:
        yield
    except (json_format.ParseError, RecursionError, ValueError) as exc:
        raise InvalidArgument(f"{name} cannot be sent to the gateway: {exc}") from None


def _run(msg: runs_pb2.Run) -> Json:
    return {
        "run_id": msg.run_id,
        "thread_id": msg.thread_id,
        "assistant_id": msg.assistant_id,
        "metadata": convert.reply_to_dict(msg, "metadata"),
        "status": convert.RUN_STATUS_NAMES.get(msg.status, "pending"),
        "kwargs": convert.reply_to_dict(msg, "kwargs"),
        "multitask_strategy": convert.MULTITASK.get(msg.multitask_strategy, "enqueue"),
        "created_at": _iso(msg.created_at),
        "updated_at": _iso(msg.updated_at),
        "langsmith_session_name": None,
    }


def _thread(msg: threads_pb2.Thread) -> Json:
    return {
        "thread_id": msg.thread_id,
        "created_at": _iso(msg.created_at),
        "updated_at": _iso(msg.updated_at),
        "state_updated_at": _iso(msg.state_updated_at) or _iso(msg.updated_at),
        "metadata": convert.reply_to_dict(msg, "metadata"),
        "status": convert.THREAD_STATUS_NAMES.get(msg.status, "idle"),
        "config": convert.reply_to_dict(msg, "config"),
        "values": _fragment(msg.values_json, b"null"),
        "error": _fragment(msg.error_json, b"null"),
        "interrupts": _fragment(msg.interrupts_json, b"{}"),
    }


def _checkpoint(msg: threads_pb2.Checkpoint) -> Json | None:
    if not msg.checkpoint_id:
        return None
    return {"checkpoint_id": msg.checkpoint_id, "thread_id": msg.thread_id, "checkpoint_ns": msg.checkpoint_ns}


def _state(msg: threads_pb2.ThreadState) -> Json:
    checkpoint = _checkpoint(msg.checkpoint) if msg.HasField("checkpoint") else None
    parent = _checkpoint(msg.parent_checkpoint) if msg.HasField("parent_checkpoint") else None
    return {
        "values": _fragment(msg.values_json, b"{}"),
        "next": list(msg.next),
        "tasks": _fragment(msg.tasks_json, b"[]"),
        "metadata": _fragment(msg.metadata_json, b"null"),
        "created_at": _iso(msg.created_at),
        "checkpoint": checkpoint,
        "parent_checkpoint": parent,
        "interrupts": _fragment(msg.interrupts_json, b"[]"),
        "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
        "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
    }


def _assistant(msg: assistants_pb2.Assistant) -> Json:
    return {
        "assistant_id": msg.assistant_id,
        "graph_id": msg.graph_id,
        "config": convert.reply_to_dict(msg, "config"),
        "context": convert.reply_to_dict(msg, "context"),
        "metadata": convert.reply_to_dict(msg, "metadata"),
        "name": msg.name,
        "created_at": _iso(msg.created_at),
        "updated_at": _iso(msg.updated_at),
        "version": msg.version,
        "description": msg.description or None,
    }


def _version(msg: assistants_pb2.Assistant) -> Json:
    return {
        "assistant_id": msg.assistant_id,
        "version": msg.version,
        "graph_id": msg.graph_id,
        "config": convert.reply_to_dict(msg, "config"),
        "context": convert.reply_to_dict(msg, "context"),
        "metadata": convert.reply_to_dict(msg, "metadata"),
        "created_at": _iso(msg.created_at),
        "name": msg.name,
        "description": msg.description or None,
    }


def _schemas(msg: assistants_pb2.AssistantSchemas, *, with_graph: bool = True) -> Json:
    schemas = {name: _fragment(getattr(msg, f"{name}_json"), b"null") for name in convert.SCHEMAS}
    return {"graph_id": msg.graph_id, **schemas} if with_graph else schemas


def _cron(msg: crons_pb2.Cron) -> Json:
    return {
        "cron_id": msg.cron_id,
        "assistant_id": msg.assistant_id,
        "thread_id": msg.thread_id or None,
        "on_run_completed": convert.ON_RUN_COMPLETED_NAMES.get(msg.on_run_completed),
        "end_time": _iso(msg.end_time),
        "schedule": msg.schedule,
        "timezone": msg.timezone or None,
        "created_at": _iso(msg.created_at),
        "updated_at": _iso(msg.updated_at),
        "user_id": msg.user_id,
        "payload": convert.reply_to_dict(msg, "payload"),
        "next_run_date": _iso(msg.next_run_date),
        "metadata": convert.reply_to_dict(msg, "metadata"),
        "enabled": msg.enabled,
    }


# The cron body's fields that are the cron's; the others are its runs' (`payload`).
_CRON_FIELDS = ("schedule", "timezone", "end_time", "enabled", "on_run_completed", "metadata")


def _cron_fields(body: Json, msg: crons_pb2.CreateCronRequest | crons_pb2.UpdateCronRequest) -> None:
    """Sets the cron's own fields of `msg` from the HTTP cron body; the rest is its payload."""
    with _fits("the cron's run fields"):
        msg.payload.CopyFrom(_struct({k: v for k, v in body.items() if k not in _CRON_FIELDS}))
    for name in ("schedule", "timezone"):
        if body.get(name) is not None:
            if not isinstance(body[name], str):
                raise InvalidArgument(f"{name} must be a string")
            setattr(msg, name, body[name])
    if body.get("enabled") is not None:
        if not isinstance(body["enabled"], bool):
            raise InvalidArgument("enabled must be a boolean")
        msg.enabled = body["enabled"]
    if body.get("end_time") is not None:
        try:
            moment = datetime.fromisoformat(body["end_time"])
        except (TypeError, ValueError):
            raise InvalidArgument(
                f"end_time must be an ISO 8601 date and time, not {shown(body['end_time'])}"
            ) from None
        msg.end_time.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    if body.get("on_run_completed") is not None:
        name = body["on_run_completed"]
        value = convert.ON_RUN_COMPLETED.get(name) if isinstance(name, str) else None
        if value is None:
            raise InvalidArgument(f"on_run_completed: {shown(body['on_run_completed'])} is not one of 'delete', 'keep'")
        msg.on_run_completed = value
    if body.get("metadata") is not None:
        if not isinstance(body["metadata"], dict):
            raise InvalidArgument("metadata must be an object")
        with _fits("metadata"):
            msg.metadata.CopyFrom(_struct(body["metadata"]))


def _thread_frames(call: grpc.aio.UnaryStreamCall[Any, threads_pb2.ThreadEventBatch]) -> AsyncIterator[bytes]:
    async def frames() -> AsyncIterator[bytes]:
        try:
            while (batch := await call.read()) is not grpc.aio.EOF:
                yield b"".join(frame(e.event, e.data_json.encode(), e.event_id) for e in batch.events)
        except grpc.aio.AioRpcError as exc:
            _raise(exc)
        finally:
            call.cancel()

    return frames()


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


async def _frames(
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
        _raise(exc)
    finally:
        call.cancel()


class RemoteBackend:
    def __init__(self, target: str, *, api_key: str | None = None) -> None:
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        # With tracing on, each call carries the trace of the request it serves to the gateway.
        self._channel = grpc.aio.insecure_channel(
            target, options=options, interceptors=tracing.grpc_client_interceptors()
        )
        self._assistants = assistants_pb2_grpc.AssistantsServiceStub(self._channel)
        self._threads = threads_pb2_grpc.ThreadsServiceStub(self._channel)
        self._runs = runs_pb2_grpc.RunsServiceStub(self._channel)
        self._sessions = sessions_pb2_grpc.SessionsServiceStub(self._channel)
        self._crons = crons_pb2_grpc.CronsServiceStub(self._channel)
        self.store = RemoteStore(self._channel, self._call)
        self._key: Metadata = (("x-api-key", api_key),) if api_key else ()
        self._stateless: OrderedDict[str, str] = OrderedDict()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def _md(self) -> Metadata:
        """The bridge's key, and the credentials of the request being served (gateway.http._forward)."""
        caller = forwarded()
        if self._key:
            caller = tuple(item for item in caller if item[0] != "x-api-key")
        return (*self._key, *caller)

    async def ping(self) -> None:
        """Raises unless the gateway answers that it serves (the bridge's readiness)."""
        response = await HealthStub(self._channel).Check(HealthCheckRequest(), metadata=self._key, timeout=3)
        if response.status != HealthCheckResponse.SERVING:
            raise Unavailable(f"the gateway is {HealthCheckResponse.ServingStatus.Name(response.status)}")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._channel.close()

    async def _call(self, method: Callable[..., Awaitable[Any]], request: Any) -> Any:
        try:
            return await method(request, metadata=self._md)
        except grpc.aio.AioRpcError as exc:
            _raise(exc)

    def _remember(self, run_id: str, thread_id: str) -> None:
        self._stateless[run_id] = thread_id
        while len(self._stateless) > _REMEMBERED_RUNS:
            self._stateless.popitem(last=False)

    def _cancel_later(self, thread_id: str, run_id: str) -> Callable[[], None]:
        def cancel() -> None:
            request = runs_pb2.CancelRunRequest(thread_id=thread_id, run_id=run_id)
            task = asyncio.create_task(self._cancel_quietly(request))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return cancel

    async def _cancel_quietly(self, request: runs_pb2.CancelRunRequest) -> None:
        try:
            await self._runs.CancelRun(request, metadata=self._md)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                logger.warning("cancelling run %s failed: %s", request.run_id, exc.details())

    # Runs

    async def create_run(self, req: RunCreate) -> Json:
        return _run(await self._call(self._runs.CreateRun, _run_request(req)))

    async def _start_stateless(self, req: RunCreate) -> tuple[Any, runs_pb2.RunEventBatch, runs_pb2.MetadataEvent]:
        # A stateless run starts at once on its own thread, so its first event (metadata, with
        # the run's ids) comes at once too, or the call fails with the request's error.
        call = self._runs.RunStreamBatch(_run_request(req), metadata=self._md)
        try:
            first = await call.read()
        except grpc.aio.AioRpcError as exc:
            _raise(exc)
        if first is grpc.aio.EOF or not first.events or first.events[0].WhichOneof("event") != "metadata":
            call.cancel()
            raise UpstreamError("the gateway's stream did not start with the run's metadata")
        meta = first.events[0].metadata
        self._remember(meta.run_id, meta.thread_id)
        return call, first, meta

    async def stream_run(self, req: RunCreate) -> RunStream:
        if req.thread_id is None:
            call, first, meta = await self._start_stateless(req)
            # The gateway cancels the run itself when this call is cancelled (on_disconnect).
            return RunStream(meta.run_id, meta.thread_id, _frames(call, first))
        # A run may wait behind another on its thread: create it (errors come back now), then
        # join its stream from the first event.
        run = await self._call(self._runs.CreateRun, _run_request(req))
        join = runs_pb2.JoinRunStreamRequest(
            thread_id=run.thread_id,
            run_id=run.run_id,
            last_event_id="0",
            cancel_on_disconnect=req.on_disconnect == "cancel",
        )
        call = self._runs.JoinRunStreamBatch(join, metadata=self._md)
        return RunStream(run.run_id, run.thread_id, _frames(call))

    async def join_stream(
        self,
        thread_id: str | None,
        run_id: str,
        *,
        last_event_id: str | None,
        modes: list[str] | None,
        cancel_on_disconnect: bool,
    ) -> RunStream:
        if thread_id is None:
            thread_id = self._stateless.get(run_id)
            if thread_id is None:
                raise NotFound(f"Run {run_id} not found.", resource="run", id=run_id)
        # Fail before the headers go out when the run does not exist.
        await self._call(self._runs.GetRun, runs_pb2.GetRunRequest(thread_id=thread_id, run_id=run_id))
        request = runs_pb2.JoinRunStreamRequest(
            thread_id=thread_id,
            run_id=run_id,
            last_event_id=last_event_id or "",
            stream_mode=[_MODES[m] for m in modes or ()],
            cancel_on_disconnect=cancel_on_disconnect,
        )
        return RunStream(run_id, thread_id, _frames(self._runs.JoinRunStreamBatch(request, metadata=self._md)))

    async def wait_run(self, req: RunCreate) -> RunOutcome:
        if req.thread_id is None:
            call, first, meta = await self._start_stateless(req)
            return RunOutcome(meta.run_id, meta.thread_id, lambda: _result_of(call, first))
        run = await self._call(self._runs.CreateRun, _run_request(req))
        cancel = self._cancel_later(run.thread_id, run.run_id) if req.on_disconnect == "cancel" else None
        return RunOutcome(run.run_id, run.thread_id, self._joiner(run.thread_id, run.run_id), cancel)

    def _joiner(self, thread_id: str, run_id: str) -> Callable[[], Awaitable[bytes]]:
        async def result() -> bytes:
            request = runs_pb2.JoinRunRequest(thread_id=thread_id, run_id=run_id)
            outcome: runs_pb2.RunResult = await self._call(self._runs.JoinRun, request)
            return outcome.result_json.encode()

        return result

    async def join_run(self, thread_id: str, run_id: str, *, cancel_on_disconnect: bool) -> RunOutcome:
        await self._call(self._runs.GetRun, runs_pb2.GetRunRequest(thread_id=thread_id, run_id=run_id))
        cancel = self._cancel_later(thread_id, run_id) if cancel_on_disconnect else None
        return RunOutcome(run_id, thread_id, self._joiner(thread_id, run_id), cancel)

    async def get_run(self, thread_id: str, run_id: str) -> Json:
        return _run(await self._call(self._runs.GetRun, runs_pb2.GetRunRequest(thread_id=thread_id, run_id=run_id)))

    async def list_runs(self, thread_id: str, *, status: str | None, limit: int, offset: int) -> list[Json]:
        request = runs_pb2.ListRunsRequest(
            thread_id=thread_id,
            limit=limit,
            offset=offset,
            status=convert.RUN_STATUSES.get(status or "", runs_pb2.RUN_STATUS_UNSPECIFIED),
        )
        response = await self._call(self._runs.ListRuns, request)
        return [_run(r) for r in response.runs]

    async def cancel_run(self, thread_id: str, run_id: str, *, action: str, wait: bool) -> RunOutcome | None:
        request = runs_pb2.CancelRunRequest(
            thread_id=thread_id,
            run_id=run_id,
            action=runs_pb2.CANCEL_ACTION_ROLLBACK if action == "rollback" else runs_pb2.CANCEL_ACTION_INTERRUPT,
        )
        await self._call(self._runs.CancelRun, request)
        return RunOutcome(run_id, thread_id, self._joiner(thread_id, run_id)) if wait else None

    async def cancel_runs(
        self, *, thread_id: str | None, run_ids: list[str] | None, status: str | None, action: str
    ) -> None:
        request = runs_pb2.CancelRunsRequest(
            thread_id=thread_id or "",
            run_ids=run_ids or [],
            status=_CANCEL_STATUS[status] if status is not None else runs_pb2.CANCEL_STATUS_UNSPECIFIED,
            action=runs_pb2.CANCEL_ACTION_ROLLBACK if action == "rollback" else runs_pb2.CANCEL_ACTION_INTERRUPT,
        )
        await self._call(self._runs.CancelRuns, request)

    async def create_runs(self, reqs: list[RunCreate]) -> list[Json]:
        request = runs_pb2.CreateRunBatchRequest(runs=[_run_request(req) for req in reqs])
        response = await self._call(self._runs.CreateRunBatch, request)
        return [_run(r) for r in response.runs]

    async def delete_run(self, thread_id: str, run_id: str) -> None:
        await self._call(self._runs.DeleteRun, runs_pb2.DeleteRunRequest(thread_id=thread_id, run_id=run_id))

    # Crons

    async def create_cron(self, body: Json, *, thread_id: str | None) -> Json:
        request = crons_pb2.CreateCronRequest(thread_id=thread_id or "")
        _cron_fields(body, request)
        return _cron(await self._call(self._crons.CreateCron, request))

    async def get_cron(self, cron_id: str) -> Json:
        return _cron(await self._call(self._crons.GetCron, crons_pb2.GetCronRequest(cron_id=cron_id)))

    async def update_cron(self, cron_id: str, body: Json) -> Json:
        request = crons_pb2.UpdateCronRequest(cron_id=cron_id)
        _cron_fields(body, request)
        if not body:
            # An empty body is the gateway's to refuse, as any other.
            request.ClearField("payload")
        if "end_time" in body and body["end_time"] is None:
            request.clear_end_time = True
        return _cron(await self._call(self._crons.UpdateCron, request))

    async def delete_cron(self, cron_id: str) -> None:
        await self._call(self._crons.DeleteCron, crons_pb2.DeleteCronRequest(cron_id=cron_id))

    async def search_crons(
        self,
        *,
        assistant_id: str | None,
        thread_id: str | None,
        enabled: bool | None,
        metadata: Json | None,
        limit: int,
        offset: int,
        sort_by: str | None,
        sort_order: str | None,
    ) -> list[Json]:
        request = crons_pb2.SearchCronsRequest(
            assistant_id=assistant_id or "",
            thread_id=thread_id or "",
            metadata=_struct(metadata),
            limit=limit,
            offset=offset,
            sort_by=sort_by or "",
            sort_order=sort_order or "",
        )
        if enabled is not None:
            request.enabled = enabled
        response = await self._call(self._crons.SearchCrons, request)
        return [_cron(c) for c in response.crons]

    async def count_crons(self, *, assistant_id: str | None, thread_id: str | None, metadata: Json | None) -> int:
        request = crons_pb2.CountCronsRequest(
            assistant_id=assistant_id or "", thread_id=thread_id or "", metadata=_struct(metadata)
        )
        response = await self._call(self._crons.CountCrons, request)
        return int(response.count)

    # Threads

    async def create_thread(
        self, thread_id: str | None, metadata: Json, if_exists: str, *, request_id: str | None = None
    ) -> Json:
        request = threads_pb2.CreateThreadRequest(
            thread_id=thread_id or "", metadata=_struct(metadata), if_exists=if_exists, request_id=request_id or ""
        )
        return _thread(await self._call(self._threads.CreateThread, request))

    async def get_thread(self, thread_id: str) -> Json:
        return _thread(await self._call(self._threads.GetThread, threads_pb2.GetThreadRequest(thread_id=thread_id)))

    async def patch_thread(self, thread_id: str, metadata: Json) -> Json:
        request = threads_pb2.UpdateThreadRequest(thread_id=thread_id, metadata=_struct(metadata))
        return _thread(await self._call(self._threads.UpdateThread, request))

    async def copy_thread(self, thread_id: str) -> Json:
        return _thread(await self._call(self._threads.CopyThread, threads_pb2.CopyThreadRequest(thread_id=thread_id)))

    async def prune_threads(self, thread_ids: list[str], *, strategy: str) -> int:
        request = threads_pb2.PruneThreadsRequest(thread_ids=thread_ids, strategy=strategy)
        return int((await self._call(self._threads.PruneThreads, request)).pruned_count)

    async def delete_thread(self, thread_id: str) -> None:
        await self._call(self._threads.DeleteThread, threads_pb2.DeleteThreadRequest(thread_id=thread_id))

    async def search_threads(self, **filters: Any) -> list[Json]:
        request = threads_pb2.SearchThreadsRequest(
            metadata=_struct(filters.get("metadata")),
            status=self._thread_status(filters.get("status")),
            limit=filters["limit"],
            offset=filters["offset"],
            ids=filters.get("ids") or [],
            values=_struct(filters.get("values")),
            sort_by=filters.get("sort_by") or "",
            sort_order=filters.get("sort_order") or "",
        )
        response = await self._call(self._threads.SearchThreads, request)
        return [_thread(t) for t in response.threads]

    @staticmethod
    def _thread_status(status: str | None) -> Any:
        value = convert.THREAD_STATUSES.get(status or "", threads_pb2.THREAD_STATUS_UNSPECIFIED)
        if status and not value:
            raise InvalidArgument(f"status {shown(status)} is not one of: {', '.join(convert.THREAD_STATUSES)}")
        return value

    async def count_threads(self, **filters: Any) -> int:
        request = threads_pb2.CountThreadsRequest(
            metadata=_struct(filters.get("metadata")),
            status=self._thread_status(filters.get("status")),
            values=_struct(filters.get("values")),
        )
        return int((await self._call(self._threads.CountThreads, request)).count)

    async def thread_state(self, thread_id: str, *, checkpoint: Json | None, subgraphs: bool) -> Json:
        request = threads_pb2.GetThreadStateRequest(
            thread_id=thread_id, checkpoint_id=(checkpoint or {}).get("checkpoint_id") or "", subgraphs=subgraphs
        )
        return _state(await self._call(self._threads.GetThreadState, request))

    async def update_thread_state(
        self, thread_id: str, values: Any, *, as_node: str | None, checkpoint: Json | None
    ) -> Json:
        request = threads_pb2.UpdateThreadStateRequest(
            thread_id=thread_id, as_node=as_node or "", checkpoint=_struct(checkpoint)
        )
        with _fits("values"):
            json_format.ParseDict(values, request.values)
        response = await self._call(self._threads.UpdateThreadState, request)
        config = convert.reply_to_dict(response, "checkpoint")
        # `configurable` and `checkpoint_id` are the Agent Server's deprecated spellings.
        return {"checkpoint": config, "configurable": config, "checkpoint_id": config.get("checkpoint_id")}

    async def thread_history(
        self, thread_id: str, *, limit: int, before: str | None, metadata: Json | None, checkpoint: Json | None
    ) -> list[Json]:
        request = threads_pb2.GetThreadHistoryRequest(
            thread_id=thread_id,
            limit=limit,
            before=before or "",
            metadata=_struct(metadata),
            checkpoint=_struct(checkpoint),
        )
        response = await self._call(self._threads.GetThreadHistory, request)
        return [_state(s) for s in response.states]

    async def thread_stream(
        self, thread_id: str, *, last_event_id: str | None, modes: list[str]
    ) -> AsyncIterator[bytes]:
        request = threads_pb2.JoinThreadStreamRequest(
            thread_id=thread_id, last_event_id=last_event_id or "", stream_modes=modes
        )
        call = self._threads.JoinThreadStream(request, metadata=self._md)
        # Its errors (an unknown thread, a malformed id) before the headers go out: the gateway
        # sends its initial metadata once it accepted the subscription, which may stay quiet.
        try:
            accepted = dict(await call.initial_metadata()).get(SUBSCRIBED) is not None
            if not accepted:
                _raise_status(await call.code(), await call.details(), await call.trailing_metadata())
        except grpc.aio.AioRpcError as exc:
            _raise(exc)
        return _thread_frames(call)

    # The thread protocol, from the gateway's SessionsService

    async def protocol_command(self, thread_id: str, command: Command) -> Json:
        if (refused := session_only(thread_id, command.body)) is not None:
            return failure(command.id, refused.code, refused.message)
        try:
            session = await self.protocol_session(thread_id)
        except NotFound as exc:
            # A thread the caller may not see, refused as the gateway's own edge refuses it.
            return failure(command.id, "not_found", exc.message)
        try:
            return await session.execute(command)
        finally:
            await session.close()

    async def protocol_session(self, thread_id: str) -> RemoteSession:
        session = RemoteSession(self._sessions, thread_id, self._md)
        await session.open()
        return session

    # Assistants

    async def get_assistant(self, assistant_id: str) -> Json:
        request = assistants_pb2.GetAssistantRequest(assistant_id=assistant_id)
        return _assistant(await self._call(self._assistants.GetAssistant, request))

    async def search_assistants(
        self,
        *,
        graph_id: str | None,
        name: str | None,
        metadata: Json | None,
        limit: int,
        offset: int,
        sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> list[Json]:
        request = assistants_pb2.SearchAssistantsRequest(
            graph_id=graph_id or "",
            name=name or "",
            metadata=_struct(metadata),
            limit=limit,
            offset=offset,
            sort_by=sort_by or "",
            sort_order=sort_order or "",
        )
        response = await self._call(self._assistants.SearchAssistants, request)
        return [_assistant(a) for a in response.assistants]

    async def count_assistants(self, *, graph_id: str | None, name: str | None, metadata: Json | None) -> int:
        request = assistants_pb2.CountAssistantsRequest(
            graph_id=graph_id or "", name=name or "", metadata=_struct(metadata)
        )
        return int((await self._call(self._assistants.CountAssistants, request)).count)

    async def create_assistant(self, **fields: Any) -> Json:
        request = assistants_pb2.CreateAssistantRequest(
            graph_id=fields["graph_id"],
            assistant_id=fields.get("assistant_id") or "",
            if_exists=fields.get("if_exists") or "",
            name=fields.get("name") or "",
        )
        for name in ("config", "context", "metadata"):
            if fields.get(name) is not None:
                with _fits(name):
                    getattr(request, name).CopyFrom(_struct(fields[name]))
        if fields.get("description") is not None:
            request.description = fields["description"]
        return _assistant(await self._call(self._assistants.CreateAssistant, request))

    async def update_assistant(self, assistant_id: str, **fields: Any) -> Json:
        request = assistants_pb2.UpdateAssistantRequest(assistant_id=assistant_id)
        for name, value in fields.items():
            if value is None:
                continue
            if isinstance(value, dict):
                with _fits(name):
                    getattr(request, name).CopyFrom(_struct(value))
            else:
                setattr(request, name, value)
        return _assistant(await self._call(self._assistants.UpdateAssistant, request))

    async def delete_assistant(self, assistant_id: str, *, delete_threads: bool) -> None:
        request = assistants_pb2.DeleteAssistantRequest(assistant_id=assistant_id, delete_threads=delete_threads)
        await self._call(self._assistants.DeleteAssistant, request)

    async def assistant_versions(
        self, assistant_id: str, *, metadata: Json | None, limit: int, offset: int
    ) -> list[Json]:
        request = assistants_pb2.ListAssistantVersionsRequest(
            assistant_id=assistant_id, metadata=_struct(metadata), limit=limit, offset=offset
        )
        response = await self._call(self._assistants.ListAssistantVersions, request)
        return [_version(v) for v in response.versions]

    async def set_latest_assistant_version(self, assistant_id: str, version: int) -> Json:
        request = assistants_pb2.SetLatestAssistantVersionRequest(assistant_id=assistant_id, version=version)
        return _assistant(await self._call(self._assistants.SetLatestAssistantVersion, request))

    async def assistant_graph(self, assistant_id: str, *, xray: bool | int) -> Json:
        request = assistants_pb2.GetAssistantGraphRequest(assistant_id=assistant_id, xray=bool(xray))
        if not isinstance(xray, bool):
            # Deeper than any graph nests: every level.
            request.xray_depth = min(xray, 2**31 - 1)
        response = await self._call(self._assistants.GetAssistantGraph, request)
        graph: Json = orjson.loads(response.graph_json or "{}")
        return graph

    async def assistant_schemas(self, assistant_id: str) -> Json:
        request = assistants_pb2.GetAssistantSchemasRequest(assistant_id=assistant_id)
        return _schemas(await self._call(self._assistants.GetAssistantSchemas, request))

    async def assistant_subgraphs(self, assistant_id: str, *, namespace: str | None, recurse: bool) -> Json:
        request = assistants_pb2.GetAssistantSubgraphsRequest(
            assistant_id=assistant_id, namespace=namespace or "", recurse=recurse
        )
        response = await self._call(self._assistants.GetAssistantSubgraphs, request)
        return {ns: _schemas(schemas, with_graph=False) for ns, schemas in response.subgraphs.items()}


async def _result_of(call: Any, first: runs_pb2.RunEventBatch) -> bytes:
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
        _raise(exc)
    finally:
        call.cancel()
    result = outcome.result()
    return result if result is not None else b"{}"


def create_remote_app(
    target: str,
    *,
    api_key: str | None = None,
    max_body_bytes: int | None = None,
    http: HttpConfig | None = None,
    custom_app: Starlette | None = None,
) -> tuple[Starlette, Callable[[], Awaitable[None]]]:
    """The HTTP/SSE app in front of the gateway at `target`; `api_key` is required from HTTP
    clients and sent to the gateway, as are every request's credentials (the gateway's
    langgraph.json auth decides). `http` and `custom_app`: langgraph.json's http section.
    Returns the app and the coroutine function that closes it."""
    backend = RemoteBackend(target, api_key=api_key)
    # The bridge runs no LangGraph of its own: it does not know the gateway's version of it.
    about = info(__version__, None)
    forward = [Middleware(ForwardCredentials)]
    app = build_app(
        backend,
        info=about,
        api_key=api_key,
        max_body_bytes=max_body_bytes,
        http=http,
        auth=forward,
        custom_app=custom_app,
        health=Health({"gateway": backend.ping}),
    )
    return app, backend.close
