"""The gRPC servicers. Each RPC parses its request, calls the core, and encodes the answer;
what a run does lives in gateway.core."""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import grpc
from langgraph.gateway.v1 import (
    assistants_pb2,
    assistants_pb2_grpc,
    runs_pb2,
    runs_pb2_grpc,
    threads_pb2,
    threads_pb2_grpc,
)

from gateway.core.gateway import Gateway
from gateway.core.thread_stream import parse_thread_event_id
from gateway.core.thread_stream import stream_modes as thread_stream_modes
from gateway.process.metrics import internal_error
from gateway.rpc import status
from gateway.rpc.io_loop import Several
from gateway.rpc.malformed import MalformedRequest
from gateway.shared.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    EventsExpired,
    GatewayError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    SubscriberTooSlow,
    TooManyRuns,
    Unauthenticated,
    Unavailable,
)
from gateway.shared.records import CancelAction, Event, RunStatus, ThreadStatus
from gateway.shared.run_body import checkpoint_ref
from gateway.shared.serde import dumps
from gateway.shared.util import run_base_ms
from gateway.wire import convert
from gateway.wire.events import event_name

logger = logging.getLogger("gateway.rpc")

# A batch message stops growing past this much payload, so that it stays well under the
# 4 MiB that clients accept by default.
_BATCH_BYTES = 1024 * 1024

_CODES: dict[type[GatewayError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    BadRequest: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    Conflict: grpc.StatusCode.FAILED_PRECONDITION,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    TooManyRuns: grpc.StatusCode.RESOURCE_EXHAUSTED,
    EventsExpired: grpc.StatusCode.OUT_OF_RANGE,
    SubscriberTooSlow: grpc.StatusCode.RESOURCE_EXHAUSTED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}
_METADATA_KEY = re.compile(r"[0-9a-z_.-]+")
# The code of an HTTP status an auth handler chose (a Refused error).
_HTTP_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

T = TypeVar("T")


def status_code(exc: GatewayError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    if exc.http_status in _HTTP_CODES:
        return _HTTP_CODES[exc.http_status]
    return grpc.StatusCode.INTERNAL if exc.http_status >= 500 else grpc.StatusCode.FAILED_PRECONDITION


def _trailers(exc: GatewayError) -> tuple[tuple[str, str], ...]:
    """The error's HTTP status and headers, for the bridge to answer as the gateway would."""
    headers = tuple(
        (name.lower(), value)
        for name, value in exc.headers.items()
        if _METADATA_KEY.fullmatch(name.lower())
        and not name.lower().endswith("-bin")
        and value.isprintable()
        and value.isascii()
    )
    return (("x-http-status", str(exc.http_status)), *headers)


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], exc: Exception, *, where: str = "") -> None:
    """Ends the call with the error's code, its message and its details: the reason and ids
    (ErrorInfo), the bad fields (BadRequest), the missing resource (ResourceInfo) and when to
    retry (RetryInfo). Anything unexpected is INTERNAL with an incident id that is also logged."""
    if isinstance(exc, GatewayError):
        code = status_code(exc)
        rich = status.details(
            code,
            exc.message,
            exc.reason,
            metadata=exc.metadata,
            violations=getattr(exc, "violations", ()),
            resource=(exc.resource, exc.id) if isinstance(exc, NotFound) and exc.resource and exc.id else None,
            retry_after=exc.retry_after,
        )
        await context.abort(code, exc.message, trailing_metadata=(*_trailers(exc), *rich))
    incident = uuid.uuid4().hex[:12]
    internal_error("grpc")
    logger.error("internal error %s%s", incident, f" {where}" if where else "", exc_info=exc)
    await status.abort(
        context,
        grpc.StatusCode.INTERNAL,
        f"internal error (incident {incident})",
        "INTERNAL",
        metadata={"incident": incident},
    )


async def _abort_unexpected(context: grpc.aio.ServicerContext[Any, Any], exc: Exception) -> None:
    await abort_with(context, exc)


def unary(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Maps the core's errors onto status codes; anything unexpected becomes INTERNAL."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> T:
        try:
            if isinstance(request, MalformedRequest):
                raise InvalidArgument(request.message)
            return await method(self, request, context)
        except GatewayError as exc:
            await abort_with(context, exc)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort_unexpected(context, exc)
        raise AssertionError("unreachable")

    return wrapper


def streaming(method: Callable[..., AsyncIterator[T]]) -> Callable[..., AsyncIterator[T]]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[T]:
        try:
            if isinstance(request, MalformedRequest):
                raise InvalidArgument(request.message)
            async for item in method(self, request, context):
                yield item
        except GatewayError as exc:
            await abort_with(context, exc)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort_unexpected(context, exc)

    return wrapper


_CANCEL_STATUSES: dict[int, tuple[RunStatus, ...]] = {
    runs_pb2.CANCEL_STATUS_UNSPECIFIED: (),
    runs_pb2.CANCEL_STATUS_PENDING: ("pending",),
    runs_pb2.CANCEL_STATUS_RUNNING: ("running",),
    runs_pb2.CANCEL_STATUS_ALL: ("pending", "running"),
}


def _thread_status(value: int) -> ThreadStatus | None:
    if not value:
        return None
    status = convert.THREAD_STATUS_NAMES.get(value)  # type: ignore[call-overload]
    if status is None:
        raise InvalidArgument(f"status: unknown value {value}")
    return cast(ThreadStatus, status)


def _checkpoint_ref(request: Any) -> dict[str, Any] | None:
    """A checkpoint of the request's thread, checked as the HTTP edge checks its body's: only its
    id, namespace and map count."""
    return checkpoint_ref({"checkpoint": convert.struct_to_dict(request, "checkpoint")}) or None


def _limit(value: int) -> int:
    if value < 0:
        raise InvalidArgument("limit must not be negative")
    return value or 10


def _offset(value: int) -> int:
    if value < 0:
        raise InvalidArgument("offset must not be negative")
    return value


class AssistantsService(assistants_pb2_grpc.AssistantsServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self._gw = gateway

    @unary
    async def GetAssistant(
        self, request: assistants_pb2.GetAssistantRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> assistants_pb2.Assistant:
        if not request.assistant_id:
            raise InvalidArgument("assistant_id is required")
        return convert.assistant(await self._gw.assistants.get(request.assistant_id))

    @unary
    async def SearchAssistants(
        self, request: assistants_pb2.SearchAssistantsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> assistants_pb2.SearchAssistantsResponse:
        found = await self._gw.assistants.search(
            graph_id=request.graph_id or None,
            name=request.name or None,
            metadata=convert.struct_to_dict(request, "metadata") or None,
            limit=_limit(request.limit),
            offset=_offset(request.offset),
        )
        return assistants_pb2.SearchAssistantsResponse(assistants=[convert.assistant(a) for a in found])

    @unary
    async def CountAssistants(
        self, request: assistants_pb2.CountAssistantsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> assistants_pb2.CountAssistantsResponse:
        count = await self._gw.assistants.count(
            graph_id=request.graph_id or None,
            name=request.name or None,
            metadata=convert.struct_to_dict(request, "metadata") or None,
        )
        return assistants_pb2.CountAssistantsResponse(count=count)

    @unary
    async def CreateAssistant(
        self, request: assistants_pb2.CreateAssistantRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> assistants_pb2.Assistant:
        if not request.graph_id:
            raise InvalidArgument("graph_id is required")
        record = await self._gw.assistants.create(
            graph_id=request.graph_id,
            assistant_id=request.assistant_id or None,
            config=convert.struct_to_dict(request, "config"),
            context=convert.struct_to_dict(request, "context") if request.HasField("context") else None,
            metadata=convert.struct_to_dict(request, "metadata"),
            if_exists=request.if_exists or "raise",
            name=request.name or None,
            description=request.description if request.HasField("description") else None,
        )
        return convert.assistant(record)

    @unary
    async def UpdateAssistant(
        self, request: assistants_pb2.UpdateAssistantRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> assistants_pb2.Assistant:
        def given(name: str) -> Any:
            if not request.HasField(name):
                return None
            value = getattr(request, name)
            return value if isinstance(value, str) else convert.struct_to_dict(request, name)

        record = await self._gw.assistants.update(
            request.assistant_id,
            graph_id=given("graph_id"),
            config=given("config"),
            context=given("context"),
            metadata=given("metadata"),
            name=given("name"),
            description=given("description"),
        )
        return convert.assistant(record)

    @unary
    async def DeleteAssistant(
        self, request: assistants_pb2.DeleteAssistantRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> assistants_pb2.DeleteAssistantResponse:
        await self._gw.assistants.delete(request.assistant_id, delete_threads=request.delete_threads)
        return assistants_pb2.DeleteAssistantResponse()

    @unary
    async def ListAssistantVersions(
        self, request: assistants_pb2.ListAssistantVersionsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> assistants_pb2.ListAssistantVersionsResponse:
        found = await self._gw.assistants.versions(
            request.assistant_id,
            metadata=convert.struct_to_dict(request, "metadata") or None,
            limit=_limit(request.limit),
            offset=_offset(request.offset),
        )
        return assistants_pb2.ListAssistantVersionsResponse(versions=[convert.assistant(v) for v in found])

    @unary
    async def SetLatestAssistantVersion(
        self, request: assistants_pb2.SetLatestAssistantVersionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> assistants_pb2.Assistant:
        return convert.assistant(await self._gw.assistants.set_latest(request.assistant_id, request.version))

    @unary
    async def GetAssistantGraph(
        self, request: assistants_pb2.GetAssistantGraphRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> assistants_pb2.AssistantGraph:
        if request.xray_depth < 0:
            raise InvalidArgument("xray_depth must not be negative")
        xray: bool | int = request.xray_depth or request.xray
        graph = await self._gw.assistants.graph_json(request.assistant_id, xray=xray)
        return assistants_pb2.AssistantGraph(graph_json=dumps(graph).decode())

    @unary
    async def GetAssistantSchemas(
        self, request: assistants_pb2.GetAssistantSchemasRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> assistants_pb2.AssistantSchemas:
        return convert.schemas(await self._gw.assistants.schemas(request.assistant_id))

    @unary
    async def GetAssistantSubgraphs(
        self, request: assistants_pb2.GetAssistantSubgraphsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> assistants_pb2.GetAssistantSubgraphsResponse:
        found = await self._gw.assistants.subgraphs(
            request.assistant_id, namespace=request.namespace or None, recurse=request.recurse
        )
        return assistants_pb2.GetAssistantSubgraphsResponse(
            subgraphs={ns: convert.schemas(schemas) for ns, schemas in found.items()}
        )


class ThreadsService(threads_pb2_grpc.ThreadsServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self._gw = gateway

    @unary
    async def CreateThread(
        self, request: threads_pb2.CreateThreadRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> threads_pb2.Thread:
        record = await self._gw.threads.create(
            thread_id=request.thread_id or None,
            metadata=convert.struct_to_dict(request, "metadata"),
            if_exists=request.if_exists or "raise",
            request_id=request.request_id or None,
        )
        return convert.thread(record)

    @unary
    async def GetThread(
        self, request: threads_pb2.GetThreadRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> threads_pb2.Thread:
        return convert.thread(await self._gw.threads.get(request.thread_id))

    @unary
    async def DeleteThread(
        self, request: threads_pb2.DeleteThreadRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> threads_pb2.DeleteThreadResponse:
        await self._gw.threads.delete(request.thread_id)
        return threads_pb2.DeleteThreadResponse()

    @unary
    async def SearchThreads(
        self, request: threads_pb2.SearchThreadsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> threads_pb2.SearchThreadsResponse:
        status = None
        if request.status:
            status = convert.THREAD_STATUS_NAMES.get(request.status)
            if status is None:
                raise InvalidArgument(f"status: unknown value {request.status}")
        found = await self._gw.threads.search(
            metadata=convert.struct_to_dict(request, "metadata") or None,
            status=status,
            limit=_limit(request.limit),
            offset=_offset(request.offset),
            ids=list(request.ids) or None,
            values=convert.struct_to_dict(request, "values") or None,
            sort_by=request.sort_by or None,
            sort_order=request.sort_order or None,
        )
        return threads_pb2.SearchThreadsResponse(threads=[convert.thread(t) for t in found])

    @unary
    async def CountThreads(
        self, request: threads_pb2.CountThreadsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> threads_pb2.CountThreadsResponse:
        count = await self._gw.threads.count(
            metadata=convert.struct_to_dict(request, "metadata") or None,
            status=_thread_status(request.status),
            values=convert.struct_to_dict(request, "values") or None,
        )
        return threads_pb2.CountThreadsResponse(count=count)

    @unary
    async def UpdateThread(
        self, request: threads_pb2.UpdateThreadRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> threads_pb2.Thread:
        record = await self._gw.threads.patch(request.thread_id, metadata=convert.struct_to_dict(request, "metadata"))
        return convert.thread(record)

    @unary
    async def CopyThread(
        self, request: threads_pb2.CopyThreadRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> threads_pb2.Thread:
        return convert.thread(await self._gw.threads.copy(request.thread_id))

    @unary
    async def PruneThreads(
        self, request: threads_pb2.PruneThreadsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> threads_pb2.PruneThreadsResponse:
        pruned = await self._gw.threads.prune(list(request.thread_ids), strategy=request.strategy or "delete")
        return threads_pb2.PruneThreadsResponse(pruned_count=pruned)

    @unary
    async def UpdateThreadState(
        self, request: threads_pb2.UpdateThreadStateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> threads_pb2.UpdateThreadStateResponse:
        values = convert.value_to_py(request, "values")
        if values is not None and not isinstance(values, (dict, list)):
            raise InvalidArgument("values must be an object, an array or null")
        config, state = await self._gw.threads.update_state(
            request.thread_id,
            values,
            as_node=request.as_node or None,
            checkpoint=_checkpoint_ref(request),
        )
        await self._gw.thread_streams.state_updated(request.thread_id, state)
        return threads_pb2.UpdateThreadStateResponse(checkpoint=convert.dict_to_struct(config))

    @streaming
    async def JoinThreadStream(
        self, request: threads_pb2.JoinThreadStreamRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[threads_pb2.ThreadEventBatch]:
        modes = thread_stream_modes(request.stream_modes)
        after = parse_thread_event_id(request.last_event_id or None)
        await self._gw.threads.get(request.thread_id)
        subscription = self._gw.thread_streams.subscribe(request.thread_id, after=after, modes=modes)
        await context.send_initial_metadata(((convert.SUBSCRIBED, "1"),))
        try:
            async for batch in subscription:
                yield threads_pb2.ThreadEventBatch(
                    events=[
                        threads_pb2.ThreadEvent(
                            event_id=e.event_id, event=event_name(e.name, e.ns), data_json=e.data.decode()
                        )
                        for e in batch
                    ]
                )
        finally:
            # Leaves the thread's runs now, not when the generator is collected.
            await subscription.aclose()  # type: ignore[attr-defined]

    @unary
    async def GetThreadState(
        self, request: threads_pb2.GetThreadStateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> threads_pb2.ThreadState:
        state = await self._gw.threads.state(
            request.thread_id, checkpoint_id=request.checkpoint_id or None, subgraphs=request.subgraphs
        )
        return convert.thread_state(state)

    @unary
    async def GetThreadHistory(
        self, request: threads_pb2.GetThreadHistoryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> threads_pb2.GetThreadHistoryResponse:
        states = await self._gw.threads.history(
            request.thread_id,
            limit=_limit(request.limit),
            before=request.before or None,
            metadata=convert.struct_to_dict(request, "metadata") or None,
            checkpoint=_checkpoint_ref(request),
        )
        return threads_pb2.GetThreadHistoryResponse(states=[convert.thread_state(s) for s in states])


class RunsService(runs_pb2_grpc.RunsServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self._runs = gateway.runs

    async def _join(self, request: runs_pb2.JoinRunStreamRequest) -> tuple[str, str, AsyncIterator[Sequence[Event]]]:
        record, events = await self._runs.join(
            request.thread_id,
            request.run_id,
            last_event_id=request.last_event_id,
            modes=convert.stream_modes(request.stream_mode) or None,
            cancel_on_disconnect=request.cancel_on_disconnect,
        )
        return record.run_id, record.thread_id, events

    async def _create(self, request: runs_pb2.CreateRunRequest) -> tuple[str, str, AsyncIterator[Sequence[Event]]]:
        record, events = await self._runs.stream(convert.run_create(request))
        return record.run_id, record.thread_id, events

    @staticmethod
    async def _one_by_one(
        run_id: str, thread_id: str, batches: AsyncIterator[Sequence[Event]]
    ) -> AsyncIterator[Several]:
        """One message per event; the events that were ready together go to the I/O loop in
        one hand-off (Several), each still its own message."""
        base_ms = run_base_ms(run_id)
        fill = convert.fill_run_event
        async for batch in batches:
            out = Several()
            for event in batch:
                msg = runs_pb2.RunEvent()
                if fill(msg, base_ms, thread_id, event):
                    out.append(msg)
            if out:
                yield out

    @staticmethod
    async def _batched(
        run_id: str, thread_id: str, batches: AsyncIterator[Sequence[Event]]
    ) -> AsyncIterator[runs_pb2.RunEventBatch]:
        base_ms = run_base_ms(run_id)
        fill = convert.fill_run_event
        async for batch in batches:
            out = runs_pb2.RunEventBatch()
            size = 0
            for event in batch:
                if size and size + len(event.data) > _BATCH_BYTES:
                    yield out
                    out = runs_pb2.RunEventBatch()
                    size = 0
                if fill(out.events.add(), base_ms, thread_id, event):
                    size += len(event.data)
                else:
                    del out.events[-1]
            if out.events:
                yield out

    @streaming
    async def RunStream(
        self, request: runs_pb2.CreateRunRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Several]:
        async for msg in self._one_by_one(*await self._create(request)):
            yield msg

    @streaming
    async def RunStreamBatch(
        self, request: runs_pb2.CreateRunRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[runs_pb2.RunEventBatch]:
        async for msg in self._batched(*await self._create(request)):
            yield msg

    @streaming
    async def JoinRunStream(
        self, request: runs_pb2.JoinRunStreamRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Several]:
        async for msg in self._one_by_one(*await self._join(request)):
            yield msg

    @streaming
    async def JoinRunStreamBatch(
        self, request: runs_pb2.JoinRunStreamRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[runs_pb2.RunEventBatch]:
        async for msg in self._batched(*await self._join(request)):
            yield msg

    @unary
    async def CreateRun(
        self, request: runs_pb2.CreateRunRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> runs_pb2.Run:
        return convert.run(await self._runs.create(convert.run_create(request)))

    @unary
    async def WaitRun(
        self, request: runs_pb2.CreateRunRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> runs_pb2.RunResult:
        record, outcome = await self._runs.wait(convert.run_create(request))
        result = await outcome
        return runs_pb2.RunResult(run=convert.run(record), result_json=result.decode())

    @unary
    async def JoinRun(
        self, request: runs_pb2.JoinRunRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> runs_pb2.RunResult:
        record = await self._runs.find(request.thread_id, request.run_id)
        result = await self._runs.outcome(request.thread_id, request.run_id)
        # The run as it ended, not as it was found (one that ran elsewhere, or was queued
        # before this process started, was found pending or running).
        with contextlib.suppress(NotFound):
            record = await self._runs.find(request.thread_id, request.run_id)
        return runs_pb2.RunResult(run=convert.run(record), result_json=result.decode())

    @unary
    async def GetRun(
        self, request: runs_pb2.GetRunRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> runs_pb2.Run:
        return convert.run(await self._runs.get(request.thread_id, request.run_id))

    @unary
    async def ListRuns(
        self, request: runs_pb2.ListRunsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> runs_pb2.ListRunsResponse:
        status = None
        if request.status:
            status = convert.RUN_STATUS_NAMES.get(request.status)
            if status is None:
                raise InvalidArgument(f"status: unknown value {request.status}")
        runs = await self._runs.list(
            request.thread_id, status=status, limit=_limit(request.limit), offset=_offset(request.offset)
        )
        return runs_pb2.ListRunsResponse(runs=[convert.run(r) for r in runs])

    @unary
    async def CancelRun(
        self, request: runs_pb2.CancelRunRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> runs_pb2.Run:
        action: CancelAction = "rollback" if request.action == runs_pb2.CANCEL_ACTION_ROLLBACK else "interrupt"
        record = await self._runs.cancel(request.thread_id, request.run_id, action=action, wait=request.wait)
        return convert.run(record)

    @unary
    async def CancelRuns(
        self, request: runs_pb2.CancelRunsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> runs_pb2.CancelRunsResponse:
        action: CancelAction = "rollback" if request.action == runs_pb2.CANCEL_ACTION_ROLLBACK else "interrupt"
        statuses = _CANCEL_STATUSES.get(request.status)
        if statuses is None:
            raise InvalidArgument(f"status: unknown value {request.status}")
        if statuses:
            if request.thread_id or request.run_ids:
                raise InvalidArgument(
                    "give either status, or thread_id and run_ids, not both",
                    violations=[("status", "set with thread_id and run_ids"), ("run_ids", "set with status")],
                )
            count = await self._runs.cancel_many(statuses=statuses, action=action)
        else:
            if not request.thread_id:
                raise InvalidArgument("thread_id is required (or status)")
            count = await self._runs.cancel_many(
                thread_id=request.thread_id, run_ids=list(request.run_ids), action=action
            )
        return runs_pb2.CancelRunsResponse(count=count)

    @unary
    async def CreateRunBatch(
        self, request: runs_pb2.CreateRunBatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> runs_pb2.CreateRunBatchResponse:
        if stateful := [i for i, run in enumerate(request.runs) if run.thread_id]:
            raise InvalidArgument(
                "the runs of a batch are stateless: thread_id must be empty",
                violations=[(f"runs[{i}].thread_id", "must be empty") for i in stateful],
            )
        reqs = [convert.run_create(run) for run in request.runs]
        records = await self._runs.create_batch(reqs)
        return runs_pb2.CreateRunBatchResponse(runs=[convert.run(r) for r in records])

    @unary
    async def DeleteRun(
        self, request: runs_pb2.DeleteRunRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> runs_pb2.DeleteRunResponse:
        await self._runs.delete(request.thread_id, request.run_id)
        return runs_pb2.DeleteRunResponse()
