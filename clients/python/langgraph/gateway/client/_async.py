"""The async client: one grpc.aio channel, a client per service, the SDK's shapes."""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict, TypeVar

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from langgraph.gateway.client import _convert as convert
from langgraph.gateway.client.errors import from_rpc_error
from langgraph.gateway.v1 import (
    assistants_pb2,
    assistants_pb2_grpc,
    crons_pb2,
    crons_pb2_grpc,
    runs_pb2,
    runs_pb2_grpc,
    store_pb2,
    store_pb2_grpc,
    threads_pb2,
    threads_pb2_grpc,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

T = TypeVar("T")
Json = dict[str, Any]
Metadata = tuple[tuple[str, str], ...]

_STREAM_MODE = runs_pb2.DESCRIPTOR.enum_types_by_name["StreamMode"]
_STRATEGY = runs_pb2.DESCRIPTOR.enum_types_by_name["MultitaskStrategy"]
_IF_NOT_EXISTS = runs_pb2.DESCRIPTOR.enum_types_by_name["IfNotExists"]
_ON_DISCONNECT = runs_pb2.DESCRIPTOR.enum_types_by_name["OnDisconnect"]
_DURABILITY = runs_pb2.DESCRIPTOR.enum_types_by_name["Durability"]
_RUN_STATUS = runs_pb2.DESCRIPTOR.enum_types_by_name["RunStatus"]
_CANCEL_ACTION = runs_pb2.DESCRIPTOR.enum_types_by_name["CancelAction"]
_CANCEL_STATUS = runs_pb2.DESCRIPTOR.enum_types_by_name["CancelStatus"]
_THREAD_STATUS = threads_pb2.DESCRIPTOR.enum_types_by_name["ThreadStatus"]
_ON_RUN_COMPLETED = crons_pb2.DESCRIPTOR.enum_types_by_name["OnRunCompleted"]

_MESSAGES_KINDS = {
    runs_pb2.MESSAGES_EVENT_KIND_TUPLE: "messages",
    runs_pb2.MESSAGES_EVENT_KIND_METADATA: "messages/metadata",
    runs_pb2.MESSAGES_EVENT_KIND_PARTIAL: "messages/partial",
    runs_pb2.MESSAGES_EVENT_KIND_COMPLETE: "messages/complete",
}
# The cases whose event is `{string json = 1}`, each with its message type.
_PAYLOADS: dict[str | None, Any] = {
    case: getattr(runs_pb2, runs_pb2.RunEvent.DESCRIPTOR.fields_by_name[case].message_type.name)
    for case in ("values", "updates", "debug", "custom", "events", "tasks", "checkpoints", "tools")
}


class StreamPart(NamedTuple):
    """One event of a run, named as the HTTP/SSE API names it ("values", "updates",
    "messages/partial", "updates|child:<task id>" from a subgraph, ...)."""

    event: str
    data: Any
    #: The event's id, for `runs.join_stream(..., last_event_id=...)`.
    id: str


# A StreamPart from a (event, data, id) tuple, all in C (no Python-level __new__ per part).
_new_part: Callable[[tuple[str, Any, str]], StreamPart] = functools.partial(tuple.__new__, StreamPart)


_VIEWS = "langgraph.gateway.client"


def _views() -> dict[str, Any]:
    """RunEventBatch as the client reads it: the same message on the wire, declared so that an
    event costs fewer Python objects (a submessage or a repeated field read through upb makes a
    Python wrapper per event, which cost as much as all the rest of a part). Built from
    runs_pb2's descriptors, so that they follow the proto. Two views:

    RunEventBatchView, an event at a time: each case of the `event` oneof is `bytes` (the case's
    message, still encoded: a payload's is its `json` field's tag, length and text), and
    `namespace` a single `bytes` (its last segment, there only to see that one is set).

    RunEventColumns, the whole batch at once: `events` is a single message, so that its
    occurrences are merged into one (as protobuf merges the occurrences of a message field),
    and each field of that message is repeated: a column per field, in the order of the events,
    all made by one parse in C. A payload case's column is a message with a repeated `json`,
    merged the same way: the payloads' texts, in order. (And RunEventBatchEncoded: the events
    left encoded, to count them.)"""
    field_type = descriptor_pb2.FieldDescriptorProto
    optional, repeated = field_type.LABEL_OPTIONAL, field_type.LABEL_REPEATED
    file = descriptor_pb2.FileDescriptorProto(name=f"{_VIEWS.replace('.', '/')}/views.proto", package=_VIEWS)
    file.syntax = "proto3"
    view = file.message_type.add(name="RunEventView")
    view.oneof_decl.add(name="event")
    column = file.message_type.add(name="RunEventColumn")
    for field in runs_pb2.RunEvent.DESCRIPTOR.fields:
        kept = field_type.TYPE_BYTES if field.type == field_type.TYPE_MESSAGE else field.type
        if field.containing_oneof is not None:
            view.field.add(name=field.name, number=field.number, type=kept, label=optional, oneof_index=0)
        elif field.name == "namespace":
            view.field.add(name=field.name, number=field.number, type=field_type.TYPE_BYTES, label=optional)
        else:
            view.field.add(name=field.name, number=field.number, type=kept, label=optional)
        if field.name in _PAYLOADS:
            texts = f".{_VIEWS}.JsonColumn"
            column.field.add(name=field.name, number=field.number, type=field.type, type_name=texts, label=optional)
        else:
            column.field.add(name=field.name, number=field.number, type=kept, label=repeated)
    text = runs_pb2.CustomEvent.DESCRIPTOR.fields_by_name["json"]
    file.message_type.add(name="JsonColumn").field.add(
        name=text.name, number=text.number, type=field_type.TYPE_BYTES, label=repeated
    )
    events = runs_pb2.RunEventBatch.DESCRIPTOR.fields_by_name["events"]
    file.message_type.add(name="RunEventBatchView").field.add(
        name=events.name, number=events.number, type=events.type, type_name=f".{_VIEWS}.RunEventView", label=repeated
    )
    file.message_type.add(name="RunEventBatchEncoded").field.add(
        name=events.name, number=events.number, type=field_type.TYPE_BYTES, label=repeated
    )
    file.message_type.add(name="RunEventColumns").field.add(
        name=events.name, number=events.number, type=events.type, type_name=f".{_VIEWS}.RunEventColumn", label=optional
    )
    # A pool of its own: the default one's RunEventBatch stays the stubs'.
    return message_factory.GetMessages([file], pool=descriptor_pool.DescriptorPool())


_VIEW_CLASSES = _views()
_EventView: Any = _VIEW_CLASSES[f"{_VIEWS}.RunEventView"]
_BatchView: Any = _VIEW_CLASSES[f"{_VIEWS}.RunEventBatchView"]
_BatchEncoded: Any = _VIEW_CLASSES[f"{_VIEWS}.RunEventBatchEncoded"]
_BatchColumns: Any = _VIEW_CLASSES[f"{_VIEWS}.RunEventColumns"]


def parts_of(batch: bytes) -> list[StreamPart]:
    """An encoded RunEventBatch's events as StreamParts, without `end` (the stream ends there).
    The payloads of a batch are decoded in one JSON document: one parse per batch, not per
    event (6x less CPU).

    A batch of payloads of one case (a long stream's), every event with its id, perhaps ended by
    the `end`, is read by columns: no Python object per event but its id, its text and its part.
    Any other is read an event at a time, through a view if it has more than a few events (the
    views' own cost is more than they save on one or two: a token's batch)."""
    if len(batch) < 2048:  # most likely a token's batch, one event: no count of its own
        plain = runs_pb2.RunEventBatch.FromString(batch).events
        if len(plain) <= 2:
            return _parts_by_event(plain)
    events = _BatchEncoded.FromString(batch).events  # each still encoded: a count, and the last
    count = len(events)
    if count <= 2:
        return _parts_by_event(runs_pb2.RunEventBatch.FromString(batch).events)
    # The columns that have values, in field order: event_id first, then the cases.
    columns = _BatchColumns.FromString(batch).events.ListFields()
    if 2 <= len(columns) <= 3 and columns[0][0].name == "event_id" and len(columns[0][1]) == count:
        case = columns[1][0].name
        texts = columns[1][1].json if case in _PAYLOADS else ()
        # Each event has one id (as many as events), and a payload of `case` or, the last
        # only, the end: the columns line up (an encoder writes each field of an event once).
        if len(texts) == count - (len(columns) - 2) and (
            len(columns) == 2
            or (columns[2][0].name == "end" and _EventView.FromString(events[-1]).WhichOneof("event") == "end")
        ):
            decoded = json.loads(b"[" + b",".join(texts) + b"]")
            return list(map(_new_part, zip(itertools.repeat(case), decoded, columns[0][1])))
    return _parts_by_view(batch)


def _parts_by_view(batch: bytes) -> list[StreamPart]:
    """parts_of an event at a time: a payload's JSON text is cut out of its encoded message when
    `json` is all there is in it, as the gateway sends it (quickest when shorter than 128 bytes:
    one byte of length), and its message decoded otherwise; a batch with an event of a subgraph
    (a namespace) is read as RunEventBatch."""
    names: list[str] = []
    ids: list[str] = []
    texts: list[bytes] = []
    for event in _BatchView.FromString(batch).events:
        case = event.WhichOneof("event")
        payload = _PAYLOADS.get(case)
        if payload is not None:
            encoded = getattr(event, case)
            try:
                # `json`'s tag (field 1, length-delimited: 10) and its length, then the text.
                whole = encoded[0] == 10 and encoded[1] == len(encoded) - 2
            except IndexError:  # no text at all
                whole = False
            texts.append(encoded[2:] if whole else _json_text(payload, encoded))
        elif case in _OTHERS:
            case, text = _named(case, _OTHERS[case].FromString(getattr(event, case)))
            texts.append(text.encode())
        else:
            continue
        if event.namespace:
            return _parts_by_event(runs_pb2.RunEventBatch.FromString(batch).events)
        names.append(case)
        ids.append(event.event_id)
    if not names:
        return []
    return list(map(_new_part, zip(names, json.loads(b"[" + b",".join(texts) + b"]"), ids, strict=True)))


def _json_text(payload: Any, encoded: bytes) -> bytes:
    """The `json` field's text of an encoded payload message."""
    if encoded[:1] == b"\n":  # its tag, then its length (a varint), then the text
        length = shift = 0
        for end, byte in enumerate(encoded[1:11], start=2):
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                if end + length == len(encoded):
                    return encoded[end:]
                break
    return bytes(payload.FromString(encoded).json.encode())


# The cases other than payloads that make a part, each with its message type (`end` makes none).
_OTHERS: dict[str | None, Any] = {
    "messages": runs_pb2.MessagesEvent,
    "metadata": runs_pb2.MetadataEvent,
    "error": runs_pb2.ErrorEvent,
}


def _named(case: str, message: Any) -> tuple[str, str]:
    """The name and the data's JSON text of a `messages`, `metadata` or `error` event."""
    if case == "messages":
        return _MESSAGES_KINDS.get(message.kind, "messages"), str(message.json)
    if case == "metadata":
        return case, json.dumps({"run_id": message.run_id, "attempt": message.attempt})
    return case, json.dumps({"error": message.error, "message": message.message})


@functools.lru_cache(maxsize=256)
def _namespaced(name: str, namespace: tuple[str, ...]) -> str:
    return f"{name}|{'|'.join(namespace)}"


def _parts_by_event(events: Sequence[runs_pb2.RunEvent]) -> list[StreamPart]:
    """parts_of, through RunEventBatch's own messages: for a batch of one or two events, and one
    with events of subgraphs (their namespaces' names cached: the same few recur)."""
    names: list[str] = []
    ids: list[str] = []
    texts: list[str] = []
    for event in events:
        case = event.WhichOneof("event")
        if case in _PAYLOADS:
            name = case
            texts.append(getattr(event, case).json)
        elif case in _OTHERS:
            name, text = _named(case, getattr(event, case))
            texts.append(text)
        else:
            continue
        namespace = event.namespace
        names.append(_namespaced(name, tuple(namespace)) if namespace else name)
        ids.append(event.event_id)
    if not names:
        return []
    return list(map(_new_part, zip(names, json.loads("[" + ",".join(texts) + "]"), ids, strict=True)))


class _Calls:
    """What every service client shares: the call metadata and the error mapping."""

    def __init__(self, metadata: Metadata, timeout: float | None) -> None:
        self.metadata = metadata
        self.timeout = timeout

    async def unary(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        try:
            return await method(request, metadata=self.metadata, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    async def stream(self, method: Callable[..., Any], request: Any) -> AsyncIterator[Any]:
        call = method(request, metadata=self.metadata)
        try:
            async for message in call:
                yield message
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        finally:
            call.cancel()


class RunArgs(TypedDict, total=False):
    """What a run is created with, as `langgraph_sdk`'s `runs.stream` / `create` / `wait` take it."""

    input: Any
    command: Mapping[str, Any] | None
    stream_mode: str | Sequence[str] | None
    stream_subgraphs: bool
    stream_resumable: bool
    config: Mapping[str, Any] | None
    context: Mapping[str, Any] | None
    metadata: Mapping[str, Any] | None
    interrupt_before: Sequence[str] | None
    interrupt_after: Sequence[str] | None
    multitask_strategy: str | None
    if_not_exists: str | None
    on_disconnect: str | None
    checkpoint_id: str | None
    durability: str | None
    # A UUID of the caller's choosing: a repeat with it gets the run the first call made.
    request_id: str | None


def _run_request(
    assistant_id: str,
    thread_id: str | None,
    *,
    input: Any = None,
    command: Mapping[str, Any] | None = None,
    stream_mode: str | Sequence[str] | None = None,
    stream_subgraphs: bool = False,
    stream_resumable: bool = False,
    config: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    interrupt_before: Sequence[str] | None = None,
    interrupt_after: Sequence[str] | None = None,
    multitask_strategy: str | None = None,
    if_not_exists: str | None = None,
    on_disconnect: str | None = None,
    checkpoint_id: str | None = None,
    durability: str | None = None,
    request_id: str | None = None,
) -> runs_pb2.CreateRunRequest:
    request: runs_pb2.CreateRunRequest = convert.build(
        runs_pb2.CreateRunRequest,
        assistant_id=assistant_id,
        thread_id=thread_id or "",
        input=None if input is None else convert.value(input),
        command=convert.struct(command, "command"),
        config=convert.struct(config, "config"),
        context=convert.struct(context, "context"),
        metadata=convert.struct(metadata, "metadata"),
        stream_mode=convert.enums(_STREAM_MODE, stream_mode, "stream_mode"),
        stream_subgraphs=stream_subgraphs,
        stream_resumable=stream_resumable,
        interrupt_before=interrupt_before,
        interrupt_after=interrupt_after,
        multitask_strategy=multitask_strategy
        and convert.enum_value(_STRATEGY, multitask_strategy, "multitask_strategy"),
        if_not_exists=if_not_exists and convert.enum_value(_IF_NOT_EXISTS, if_not_exists, "if_not_exists"),
        on_disconnect=on_disconnect and convert.enum_value(_ON_DISCONNECT, on_disconnect, "on_disconnect"),
        checkpoint_id=checkpoint_id,
        durability=durability and convert.enum_value(_DURABILITY, durability, "durability"),
        request_id=request_id,
    )
    return request


def _result(outcome: runs_pb2.RunResult) -> Any:
    return json.loads(outcome.result_json) if outcome.result_json else None


class RunsClient:
    def __init__(self, channel: grpc.aio.Channel, calls: _Calls) -> None:
        self._stub = runs_pb2_grpc.RunsServiceStub(channel)
        self._calls = calls
        # The batch streams as the stubs call them, but their messages left encoded: parts_of reads them.
        self._stream_batch = channel.unary_stream(
            "/langgraph.gateway.v1.RunsService/RunStreamBatch",
            request_serializer=runs_pb2.CreateRunRequest.SerializeToString,
            response_deserializer=None,
        )
        self._join_stream_batch = channel.unary_stream(
            "/langgraph.gateway.v1.RunsService/JoinRunStreamBatch",
            request_serializer=runs_pb2.JoinRunStreamRequest.SerializeToString,
            response_deserializer=None,
        )

    async def stream(
        self, thread_id: str | None, assistant_id: str, **kwargs: Unpack[RunArgs]
    ) -> AsyncIterator[StreamPart]:
        """Creates a run and streams its events (RunStreamBatch: the events that were ready
        together come in one message). `thread_id` None: a stateless run. Keyword arguments
        as `langgraph_sdk`'s: input, command, stream_mode, stream_subgraphs, stream_resumable,
        config, context, metadata, interrupt_before, interrupt_after, multitask_strategy,
        if_not_exists, on_disconnect, checkpoint_id, durability, and request_id (a repeat with
        it follows the run the first call made)."""
        request = _run_request(assistant_id, thread_id, **kwargs)
        async for batch in self._calls.stream(self._stream_batch, request):
            for part in parts_of(batch):
                yield part

    async def create(self, thread_id: str | None, assistant_id: str, **kwargs: Unpack[RunArgs]) -> Json:
        """A run in the background; join it with `join`, `join_stream` or `wait` on its thread."""
        run = await self._calls.unary(self._stub.CreateRun, _run_request(assistant_id, thread_id, **kwargs))
        return convert.to_dict(run)

    async def wait(self, thread_id: str | None, assistant_id: str, **kwargs: Unpack[RunArgs]) -> Any:
        """Creates a run and returns its outcome: the final values, or the interrupt chunk."""
        return _result(await self._calls.unary(self._stub.WaitRun, _run_request(assistant_id, thread_id, **kwargs)))

    async def join(self, thread_id: str, run_id: str) -> Any:
        request = runs_pb2.JoinRunRequest(thread_id=thread_id, run_id=run_id)
        return _result(await self._calls.unary(self._stub.JoinRun, request))

    async def join_stream(
        self,
        thread_id: str,
        run_id: str,
        *,
        last_event_id: str | None = None,
        stream_mode: str | Sequence[str] | None = None,
        cancel_on_disconnect: bool = False,
    ) -> AsyncIterator[StreamPart]:
        """A run's events: replayed after `last_event_id` ("0": from the start), then live."""
        request = convert.build(
            runs_pb2.JoinRunStreamRequest,
            thread_id=thread_id,
            run_id=run_id,
            last_event_id=last_event_id or "",
            stream_mode=convert.enums(_STREAM_MODE, stream_mode, "stream_mode"),
            cancel_on_disconnect=cancel_on_disconnect,
        )
        async for batch in self._calls.stream(self._join_stream_batch, request):
            for part in parts_of(batch):
                yield part

    async def get(self, thread_id: str, run_id: str) -> Json:
        run = await self._calls.unary(self._stub.GetRun, runs_pb2.GetRunRequest(thread_id=thread_id, run_id=run_id))
        return convert.to_dict(run)

    async def list(self, thread_id: str, *, limit: int = 10, offset: int = 0, status: str | None = None) -> list[Json]:
        request = convert.build(
            runs_pb2.ListRunsRequest,
            thread_id=thread_id,
            limit=limit,
            offset=offset,
            status=convert.enum_value(_RUN_STATUS, status, "status") if status else 0,
        )
        return [convert.to_dict(r) for r in (await self._calls.unary(self._stub.ListRuns, request)).runs]

    async def cancel(self, thread_id: str, run_id: str, *, wait: bool = False, action: str = "interrupt") -> Json:
        request = convert.build(
            runs_pb2.CancelRunRequest,
            thread_id=thread_id,
            run_id=run_id,
            wait=wait,
            action=convert.enum_value(_CANCEL_ACTION, action, "action"),
        )
        return convert.to_dict(await self._calls.unary(self._stub.CancelRun, request))

    async def cancel_many(
        self,
        *,
        thread_id: str | None = None,
        run_ids: Sequence[str] | None = None,
        status: str | None = None,
        action: str = "interrupt",
    ) -> int:
        request = convert.build(
            runs_pb2.CancelRunsRequest,
            thread_id=thread_id or "",
            run_ids=run_ids or (),
            status=convert.enum_value(_CANCEL_STATUS, status, "status") if status else 0,
            action=convert.enum_value(_CANCEL_ACTION, action, "action"),
        )
        return int((await self._calls.unary(self._stub.CancelRuns, request)).count)

    async def delete(self, thread_id: str, run_id: str) -> None:
        await self._calls.unary(self._stub.DeleteRun, runs_pb2.DeleteRunRequest(thread_id=thread_id, run_id=run_id))


class ThreadsClient:
    def __init__(self, channel: grpc.aio.Channel, calls: _Calls) -> None:
        self._stub = threads_pb2_grpc.ThreadsServiceStub(channel)
        self._calls = calls

    async def create(
        self,
        *,
        metadata: Mapping[str, Any] | None = None,
        thread_id: str | None = None,
        if_exists: str | None = None,
        request_id: str | None = None,
    ) -> Json:
        """`request_id`: a UUID of the caller's choosing; a repeat with it gets the thread the
        first call made."""
        request = convert.build(
            threads_pb2.CreateThreadRequest,
            thread_id=thread_id,
            metadata=convert.struct(metadata, "metadata"),
            if_exists=if_exists,
            request_id=request_id,
        )
        return convert.to_dict(await self._calls.unary(self._stub.CreateThread, request))

    async def get(self, thread_id: str) -> Json:
        request = threads_pb2.GetThreadRequest(thread_id=thread_id)
        return convert.to_dict(await self._calls.unary(self._stub.GetThread, request))

    async def update(self, thread_id: str, *, metadata: Mapping[str, Any]) -> Json:
        request = convert.build(
            threads_pb2.UpdateThreadRequest, thread_id=thread_id, metadata=convert.struct(metadata, "metadata")
        )
        return convert.to_dict(await self._calls.unary(self._stub.UpdateThread, request))

    async def delete(self, thread_id: str) -> None:
        await self._calls.unary(self._stub.DeleteThread, threads_pb2.DeleteThreadRequest(thread_id=thread_id))

    async def copy(self, thread_id: str) -> Json:
        request = threads_pb2.CopyThreadRequest(thread_id=thread_id)
        return convert.to_dict(await self._calls.unary(self._stub.CopyThread, request))

    async def search(
        self,
        *,
        metadata: Mapping[str, Any] | None = None,
        values: Mapping[str, Any] | None = None,
        ids: Sequence[str] | None = None,
        status: str | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> list[Json]:
        request = convert.build(
            threads_pb2.SearchThreadsRequest,
            metadata=convert.struct(metadata, "metadata"),
            values=convert.struct(values, "values"),
            ids=ids,
            status=status and convert.enum_value(_THREAD_STATUS, status, "status"),
            limit=limit,
            offset=offset,
            sort_by=sort_by,
            sort_order=sort_order,
        )
        return [convert.to_dict(t) for t in (await self._calls.unary(self._stub.SearchThreads, request)).threads]

    async def count(
        self,
        *,
        metadata: Mapping[str, Any] | None = None,
        values: Mapping[str, Any] | None = None,
        status: str | None = None,
    ) -> int:
        request = convert.build(
            threads_pb2.CountThreadsRequest,
            metadata=convert.struct(metadata, "metadata"),
            values=convert.struct(values, "values"),
            status=status and convert.enum_value(_THREAD_STATUS, status, "status"),
        )
        return int((await self._calls.unary(self._stub.CountThreads, request)).count)

    async def get_state(self, thread_id: str, *, checkpoint_id: str | None = None, subgraphs: bool = False) -> Json:
        request = threads_pb2.GetThreadStateRequest(
            thread_id=thread_id, checkpoint_id=checkpoint_id or "", subgraphs=subgraphs
        )
        return convert.to_dict(await self._calls.unary(self._stub.GetThreadState, request))

    async def update_state(
        self,
        thread_id: str,
        values: Any,
        *,
        as_node: str | None = None,
        checkpoint: Mapping[str, Any] | None = None,
    ) -> Json:
        request = convert.build(
            threads_pb2.UpdateThreadStateRequest,
            thread_id=thread_id,
            values=convert.value(values),
            as_node=as_node,
            checkpoint=convert.struct(checkpoint, "checkpoint"),
        )
        return convert.to_dict(await self._calls.unary(self._stub.UpdateThreadState, request))

    async def get_history(
        self,
        thread_id: str,
        *,
        limit: int = 10,
        before: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        checkpoint: Mapping[str, Any] | None = None,
    ) -> list[Json]:
        request = convert.build(
            threads_pb2.GetThreadHistoryRequest,
            thread_id=thread_id,
            limit=limit,
            before=before,
            metadata=convert.struct(metadata, "metadata"),
            checkpoint=convert.struct(checkpoint, "checkpoint"),
        )
        return [convert.to_dict(s) for s in (await self._calls.unary(self._stub.GetThreadHistory, request)).states]


class AssistantsClient:
    def __init__(self, channel: grpc.aio.Channel, calls: _Calls) -> None:
        self._stub = assistants_pb2_grpc.AssistantsServiceStub(channel)
        self._calls = calls

    async def get(self, assistant_id: str) -> Json:
        request = assistants_pb2.GetAssistantRequest(assistant_id=assistant_id)
        return convert.to_dict(await self._calls.unary(self._stub.GetAssistant, request))

    async def create(
        self,
        graph_id: str,
        *,
        config: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        assistant_id: str | None = None,
        if_exists: str | None = None,
        name: str | None = None,
        description: str | None = None,
    ) -> Json:
        request = convert.build(
            assistants_pb2.CreateAssistantRequest,
            graph_id=graph_id,
            config=convert.struct(config, "config"),
            context=convert.struct(context, "context"),
            metadata=convert.struct(metadata, "metadata"),
            assistant_id=assistant_id,
            if_exists=if_exists,
            name=name,
            description=description,
        )
        return convert.to_dict(await self._calls.unary(self._stub.CreateAssistant, request))

    async def update(
        self,
        assistant_id: str,
        *,
        graph_id: str | None = None,
        config: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        name: str | None = None,
        description: str | None = None,
    ) -> Json:
        request = convert.build(
            assistants_pb2.UpdateAssistantRequest,
            assistant_id=assistant_id,
            graph_id=graph_id,
            config=convert.struct(config, "config"),
            context=convert.struct(context, "context"),
            metadata=convert.struct(metadata, "metadata"),
            name=name,
            description=description,
        )
        return convert.to_dict(await self._calls.unary(self._stub.UpdateAssistant, request))

    async def delete(self, assistant_id: str, *, delete_threads: bool = False) -> None:
        request = assistants_pb2.DeleteAssistantRequest(assistant_id=assistant_id, delete_threads=delete_threads)
        await self._calls.unary(self._stub.DeleteAssistant, request)

    async def search(
        self,
        *,
        graph_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        name: str | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> list[Json]:
        request = convert.build(
            assistants_pb2.SearchAssistantsRequest,
            graph_id=graph_id,
            metadata=convert.struct(metadata, "metadata"),
            name=name,
            limit=limit,
            offset=offset,
            sort_by=sort_by,
            sort_order=sort_order,
        )
        found = await self._calls.unary(self._stub.SearchAssistants, request)
        return [convert.to_dict(a) for a in found.assistants]

    async def count(
        self, *, graph_id: str | None = None, metadata: Mapping[str, Any] | None = None, name: str | None = None
    ) -> int:
        request = convert.build(
            assistants_pb2.CountAssistantsRequest,
            graph_id=graph_id,
            metadata=convert.struct(metadata, "metadata"),
            name=name,
        )
        return int((await self._calls.unary(self._stub.CountAssistants, request)).count)

    async def get_versions(
        self, assistant_id: str, *, metadata: Mapping[str, Any] | None = None, limit: int = 10, offset: int = 0
    ) -> list[Json]:
        request = convert.build(
            assistants_pb2.ListAssistantVersionsRequest,
            assistant_id=assistant_id,
            metadata=convert.struct(metadata, "metadata"),
            limit=limit,
            offset=offset,
        )
        found = await self._calls.unary(self._stub.ListAssistantVersions, request)
        return [convert.to_dict(a) for a in found.versions]

    async def set_latest(self, assistant_id: str, version: int) -> Json:
        request = assistants_pb2.SetLatestAssistantVersionRequest(assistant_id=assistant_id, version=version)
        return convert.to_dict(await self._calls.unary(self._stub.SetLatestAssistantVersion, request))

    async def get_graph(self, assistant_id: str, *, xray: bool | int = False) -> Any:
        request = assistants_pb2.GetAssistantGraphRequest(
            assistant_id=assistant_id,
            xray=bool(xray),
            xray_depth=xray if isinstance(xray, int) and not isinstance(xray, bool) else 0,
        )
        return convert.to_dict(await self._calls.unary(self._stub.GetAssistantGraph, request))["graph"]

    async def get_schemas(self, assistant_id: str) -> Json:
        request = assistants_pb2.GetAssistantSchemasRequest(assistant_id=assistant_id)
        return convert.to_dict(await self._calls.unary(self._stub.GetAssistantSchemas, request))

    async def get_subgraphs(self, assistant_id: str, *, namespace: str | None = None, recurse: bool = False) -> Json:
        request = assistants_pb2.GetAssistantSubgraphsRequest(
            assistant_id=assistant_id, namespace=namespace or "", recurse=recurse
        )
        found = await self._calls.unary(self._stub.GetAssistantSubgraphs, request)
        return dict(convert.to_dict(found)["subgraphs"])


class StoreClient:
    def __init__(self, channel: grpc.aio.Channel, calls: _Calls) -> None:
        self._stub = store_pb2_grpc.StoreServiceStub(channel)
        self._calls = calls

    async def put_item(
        self,
        namespace: Sequence[str],
        key: str,
        value: Mapping[str, Any],
        *,
        index: bool | Sequence[str] | None = None,
        ttl: float | None = None,
    ) -> None:
        request = convert.build(
            store_pb2.PutItemRequest,
            namespace=namespace,
            key=key,
            value=convert.struct(value, "value"),
            skip_index=index is False,
            index_fields=list(index) if isinstance(index, Sequence) and not isinstance(index, str) else None,
            ttl_minutes=ttl,
        )
        await self._calls.unary(self._stub.PutItem, request)

    async def get_item(self, namespace: Sequence[str], key: str, *, refresh_ttl: bool = False) -> Json | None:
        request = store_pb2.GetItemRequest(namespace=namespace, key=key, refresh_ttl=refresh_ttl)
        found = await self._calls.unary(self._stub.GetItem, request)
        return _item(found.item) if found.HasField("item") else None

    async def delete_item(self, namespace: Sequence[str], key: str) -> None:
        await self._calls.unary(self._stub.DeleteItem, store_pb2.DeleteItemRequest(namespace=namespace, key=key))

    async def search_items(
        self,
        namespace_prefix: Sequence[str],
        *,
        filter: Mapping[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        query: str | None = None,
        refresh_ttl: bool = False,
    ) -> list[Json]:
        request = convert.build(
            store_pb2.SearchItemsRequest,
            namespace_prefix=namespace_prefix,
            filter=convert.struct(filter, "filter"),
            limit=limit,
            offset=offset,
            query=query,
            refresh_ttl=refresh_ttl,
        )
        return [_item(i) for i in (await self._calls.unary(self._stub.SearchItems, request)).items]

    async def list_namespaces(
        self,
        *,
        prefix: Sequence[str] | None = None,
        suffix: Sequence[str] | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[list[str]]:
        request = convert.build(
            store_pb2.ListNamespacesRequest,
            prefix=prefix,
            suffix=suffix,
            max_depth=max_depth,
            limit=limit,
            offset=offset,
        )
        found = await self._calls.unary(self._stub.ListNamespaces, request)
        return [list(ns.labels) for ns in found.namespaces]


def _item(item: store_pb2.Item) -> Json:
    out = convert.to_dict(item)
    out["value"] = out.pop("value", None)
    return out


class CronsClient:
    def __init__(self, channel: grpc.aio.Channel, calls: _Calls) -> None:
        self._stub = crons_pb2_grpc.CronsServiceStub(channel)
        self._calls = calls

    async def create(
        self,
        assistant_id: str,
        *,
        schedule: str,
        thread_id: str | None = None,
        input: Any = None,
        config: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        timezone: str | None = None,
        end_time: str | None = None,
        enabled: bool = True,
        on_run_completed: str | None = None,
        run: Mapping[str, Any] | None = None,
    ) -> Json:
        """A cron of the assistant's runs; `thread_id` None: each run on a new thread. The
        run's other arguments (stream_mode, interrupt_before, ...) go in `run`, as JSON."""
        payload = {"assistant_id": assistant_id, **(run or {})}
        for name, given in (("input", input), ("config", config), ("context", context)):
            if given is not None:
                payload[name] = given
        request = convert.build(
            crons_pb2.CreateCronRequest,
            thread_id=thread_id,
            schedule=schedule,
            timezone=timezone,
            end_time=convert.timestamp(end_time),
            enabled=enabled,
            on_run_completed=on_run_completed
            and convert.enum_value(_ON_RUN_COMPLETED, on_run_completed, "on_run_completed"),
            metadata=convert.struct(metadata, "metadata"),
            payload=convert.struct(payload, "payload"),
        )
        return convert.to_dict(await self._calls.unary(self._stub.CreateCron, request))

    async def get(self, cron_id: str) -> Json:
        return convert.to_dict(await self._calls.unary(self._stub.GetCron, crons_pb2.GetCronRequest(cron_id=cron_id)))

    async def delete(self, cron_id: str) -> None:
        await self._calls.unary(self._stub.DeleteCron, crons_pb2.DeleteCronRequest(cron_id=cron_id))

    async def search(
        self,
        *,
        assistant_id: str | None = None,
        thread_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[Json]:
        request = convert.build(
            crons_pb2.SearchCronsRequest,
            assistant_id=assistant_id,
            thread_id=thread_id,
            metadata=convert.struct(metadata, "metadata"),
            limit=limit,
            offset=offset,
        )
        return [convert.to_dict(c) for c in (await self._calls.unary(self._stub.SearchCrons, request)).crons]

    async def count(
        self,
        *,
        assistant_id: str | None = None,
        thread_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        request = convert.build(
            crons_pb2.CountCronsRequest,
            assistant_id=assistant_id,
            thread_id=thread_id,
            metadata=convert.struct(metadata, "metadata"),
        )
        return int((await self._calls.unary(self._stub.CountCrons, request)).count)


class GatewayClient:
    """The gateway's services over one grpc.aio channel. Close it (or use `async with`)."""

    def __init__(self, channel: grpc.aio.Channel, *, metadata: Metadata = (), timeout: float | None = None) -> None:
        self.channel = channel
        calls = _Calls(metadata, timeout)
        self.threads = ThreadsClient(channel, calls)
        self.runs = RunsClient(channel, calls)
        self.assistants = AssistantsClient(channel, calls)
        self.store = StoreClient(channel, calls)
        self.crons = CronsClient(channel, calls)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
