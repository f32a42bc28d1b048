import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StreamMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STREAM_MODE_UNSPECIFIED: _ClassVar[StreamMode]
    STREAM_MODE_VALUES: _ClassVar[StreamMode]
    STREAM_MODE_UPDATES: _ClassVar[StreamMode]
    STREAM_MODE_MESSAGES_TUPLE: _ClassVar[StreamMode]
    STREAM_MODE_MESSAGES: _ClassVar[StreamMode]
    STREAM_MODE_DEBUG: _ClassVar[StreamMode]
    STREAM_MODE_CUSTOM: _ClassVar[StreamMode]
    STREAM_MODE_EVENTS: _ClassVar[StreamMode]
    STREAM_MODE_TASKS: _ClassVar[StreamMode]
    STREAM_MODE_CHECKPOINTS: _ClassVar[StreamMode]
    STREAM_MODE_TOOLS: _ClassVar[StreamMode]

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_PENDING: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_SUCCESS: _ClassVar[RunStatus]
    RUN_STATUS_ERROR: _ClassVar[RunStatus]
    RUN_STATUS_TIMEOUT: _ClassVar[RunStatus]
    RUN_STATUS_INTERRUPTED: _ClassVar[RunStatus]

class OnDisconnect(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ON_DISCONNECT_UNSPECIFIED: _ClassVar[OnDisconnect]
    ON_DISCONNECT_CONTINUE: _ClassVar[OnDisconnect]
    ON_DISCONNECT_CANCEL: _ClassVar[OnDisconnect]

class MultitaskStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MULTITASK_STRATEGY_UNSPECIFIED: _ClassVar[MultitaskStrategy]
    MULTITASK_STRATEGY_REJECT: _ClassVar[MultitaskStrategy]
    MULTITASK_STRATEGY_INTERRUPT: _ClassVar[MultitaskStrategy]
    MULTITASK_STRATEGY_ROLLBACK: _ClassVar[MultitaskStrategy]
    MULTITASK_STRATEGY_ENQUEUE: _ClassVar[MultitaskStrategy]

class IfNotExists(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IF_NOT_EXISTS_UNSPECIFIED: _ClassVar[IfNotExists]
    IF_NOT_EXISTS_REJECT: _ClassVar[IfNotExists]
    IF_NOT_EXISTS_CREATE: _ClassVar[IfNotExists]

class Durability(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DURABILITY_UNSPECIFIED: _ClassVar[Durability]
    DURABILITY_SYNC: _ClassVar[Durability]
    DURABILITY_ASYNC: _ClassVar[Durability]
    DURABILITY_EXIT: _ClassVar[Durability]

class CancelAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANCEL_ACTION_UNSPECIFIED: _ClassVar[CancelAction]
    CANCEL_ACTION_INTERRUPT: _ClassVar[CancelAction]
    CANCEL_ACTION_ROLLBACK: _ClassVar[CancelAction]

class MessagesEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGES_EVENT_KIND_UNSPECIFIED: _ClassVar[MessagesEventKind]
    MESSAGES_EVENT_KIND_TUPLE: _ClassVar[MessagesEventKind]
    MESSAGES_EVENT_KIND_METADATA: _ClassVar[MessagesEventKind]
    MESSAGES_EVENT_KIND_PARTIAL: _ClassVar[MessagesEventKind]
    MESSAGES_EVENT_KIND_COMPLETE: _ClassVar[MessagesEventKind]

class CancelStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANCEL_STATUS_UNSPECIFIED: _ClassVar[CancelStatus]
    CANCEL_STATUS_PENDING: _ClassVar[CancelStatus]
    CANCEL_STATUS_RUNNING: _ClassVar[CancelStatus]
    CANCEL_STATUS_ALL: _ClassVar[CancelStatus]
STREAM_MODE_UNSPECIFIED: StreamMode
STREAM_MODE_VALUES: StreamMode
STREAM_MODE_UPDATES: StreamMode
STREAM_MODE_MESSAGES_TUPLE: StreamMode
STREAM_MODE_MESSAGES: StreamMode
STREAM_MODE_DEBUG: StreamMode
STREAM_MODE_CUSTOM: StreamMode
STREAM_MODE_EVENTS: StreamMode
STREAM_MODE_TASKS: StreamMode
STREAM_MODE_CHECKPOINTS: StreamMode
STREAM_MODE_TOOLS: StreamMode
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_PENDING: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_SUCCESS: RunStatus
RUN_STATUS_ERROR: RunStatus
RUN_STATUS_TIMEOUT: RunStatus
RUN_STATUS_INTERRUPTED: RunStatus
ON_DISCONNECT_UNSPECIFIED: OnDisconnect
ON_DISCONNECT_CONTINUE: OnDisconnect
ON_DISCONNECT_CANCEL: OnDisconnect
MULTITASK_STRATEGY_UNSPECIFIED: MultitaskStrategy
MULTITASK_STRATEGY_REJECT: MultitaskStrategy
MULTITASK_STRATEGY_INTERRUPT: MultitaskStrategy
MULTITASK_STRATEGY_ROLLBACK: MultitaskStrategy
MULTITASK_STRATEGY_ENQUEUE: MultitaskStrategy
IF_NOT_EXISTS_UNSPECIFIED: IfNotExists
IF_NOT_EXISTS_REJECT: IfNotExists
IF_NOT_EXISTS_CREATE: IfNotExists
DURABILITY_UNSPECIFIED: Durability
DURABILITY_SYNC: Durability
DURABILITY_ASYNC: Durability
DURABILITY_EXIT: Durability
CANCEL_ACTION_UNSPECIFIED: CancelAction
CANCEL_ACTION_INTERRUPT: CancelAction
CANCEL_ACTION_ROLLBACK: CancelAction
MESSAGES_EVENT_KIND_UNSPECIFIED: MessagesEventKind
MESSAGES_EVENT_KIND_TUPLE: MessagesEventKind
MESSAGES_EVENT_KIND_METADATA: MessagesEventKind
MESSAGES_EVENT_KIND_PARTIAL: MessagesEventKind
MESSAGES_EVENT_KIND_COMPLETE: MessagesEventKind
CANCEL_STATUS_UNSPECIFIED: CancelStatus
CANCEL_STATUS_PENDING: CancelStatus
CANCEL_STATUS_RUNNING: CancelStatus
CANCEL_STATUS_ALL: CancelStatus

class Run(_message.Message):
    __slots__ = ("run_id", "thread_id", "assistant_id", "status", "metadata", "multitask_strategy", "created_at", "updated_at", "kwargs")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    MULTITASK_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    KWARGS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    thread_id: str
    assistant_id: str
    status: RunStatus
    metadata: _struct_pb2.Struct
    multitask_strategy: MultitaskStrategy
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    kwargs: _struct_pb2.Struct
    def __init__(self, run_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., assistant_id: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., multitask_strategy: _Optional[_Union[MultitaskStrategy, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kwargs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class CreateRunRequest(_message.Message):
    __slots__ = ("assistant_id", "thread_id", "input", "command", "config", "context", "metadata", "stream_mode", "stream_subgraphs", "stream_resumable", "on_disconnect", "multitask_strategy", "if_not_exists", "interrupt_before", "interrupt_after", "checkpoint_id", "durability", "keep_thread", "request_id")
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    STREAM_MODE_FIELD_NUMBER: _ClassVar[int]
    STREAM_SUBGRAPHS_FIELD_NUMBER: _ClassVar[int]
    STREAM_RESUMABLE_FIELD_NUMBER: _ClassVar[int]
    ON_DISCONNECT_FIELD_NUMBER: _ClassVar[int]
    MULTITASK_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    IF_NOT_EXISTS_FIELD_NUMBER: _ClassVar[int]
    INTERRUPT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    INTERRUPT_AFTER_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    DURABILITY_FIELD_NUMBER: _ClassVar[int]
    KEEP_THREAD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    assistant_id: str
    thread_id: str
    input: _struct_pb2.Value
    command: _struct_pb2.Struct
    config: _struct_pb2.Struct
    context: _struct_pb2.Struct
    metadata: _struct_pb2.Struct
    stream_mode: _containers.RepeatedScalarFieldContainer[StreamMode]
    stream_subgraphs: bool
    stream_resumable: bool
    on_disconnect: OnDisconnect
    multitask_strategy: MultitaskStrategy
    if_not_exists: IfNotExists
    interrupt_before: _containers.RepeatedScalarFieldContainer[str]
    interrupt_after: _containers.RepeatedScalarFieldContainer[str]
    checkpoint_id: str
    durability: Durability
    keep_thread: bool
    request_id: str
    def __init__(self, assistant_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., command: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., stream_mode: _Optional[_Iterable[_Union[StreamMode, str]]] = ..., stream_subgraphs: _Optional[bool] = ..., stream_resumable: _Optional[bool] = ..., on_disconnect: _Optional[_Union[OnDisconnect, str]] = ..., multitask_strategy: _Optional[_Union[MultitaskStrategy, str]] = ..., if_not_exists: _Optional[_Union[IfNotExists, str]] = ..., interrupt_before: _Optional[_Iterable[str]] = ..., interrupt_after: _Optional[_Iterable[str]] = ..., checkpoint_id: _Optional[str] = ..., durability: _Optional[_Union[Durability, str]] = ..., keep_thread: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class JoinRunStreamRequest(_message.Message):
    __slots__ = ("thread_id", "run_id", "last_event_id", "stream_mode", "cancel_on_disconnect")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_MODE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_ON_DISCONNECT_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    run_id: str
    last_event_id: str
    stream_mode: _containers.RepeatedScalarFieldContainer[StreamMode]
    cancel_on_disconnect: bool
    def __init__(self, thread_id: _Optional[str] = ..., run_id: _Optional[str] = ..., last_event_id: _Optional[str] = ..., stream_mode: _Optional[_Iterable[_Union[StreamMode, str]]] = ..., cancel_on_disconnect: _Optional[bool] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("thread_id", "run_id")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    run_id: str
    def __init__(self, thread_id: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("thread_id", "limit", "offset", "status")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    limit: int
    offset: int
    status: RunStatus
    def __init__(self, thread_id: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., status: _Optional[_Union[RunStatus, str]] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("thread_id", "run_id", "action", "wait")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    run_id: str
    action: CancelAction
    wait: bool
    def __init__(self, thread_id: _Optional[str] = ..., run_id: _Optional[str] = ..., action: _Optional[_Union[CancelAction, str]] = ..., wait: _Optional[bool] = ...) -> None: ...

class JoinRunRequest(_message.Message):
    __slots__ = ("thread_id", "run_id")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    run_id: str
    def __init__(self, thread_id: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class RunResult(_message.Message):
    __slots__ = ("run", "result_json")
    RUN_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    run: Run
    result_json: str
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ..., result_json: _Optional[str] = ...) -> None: ...

class MetadataEvent(_message.Message):
    __slots__ = ("run_id", "thread_id", "attempt")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    thread_id: str
    attempt: int
    def __init__(self, run_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class ValuesEvent(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...

class UpdatesEvent(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...

class MessagesEvent(_message.Message):
    __slots__ = ("json", "kind")
    JSON_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    json: str
    kind: MessagesEventKind
    def __init__(self, json: _Optional[str] = ..., kind: _Optional[_Union[MessagesEventKind, str]] = ...) -> None: ...

class DebugEvent(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...

class CustomEvent(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...

class EventsEvent(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...

class TasksEvent(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...

class CheckpointsEvent(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...

class ToolsEvent(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...

class ErrorEvent(_message.Message):
    __slots__ = ("error", "message")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    error: str
    message: str
    def __init__(self, error: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class EndEvent(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: RunStatus
    def __init__(self, status: _Optional[_Union[RunStatus, str]] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("event_id", "namespace", "metadata", "values", "updates", "messages", "debug", "custom", "events", "tasks", "checkpoints", "tools", "error", "end")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    DEBUG_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    namespace: _containers.RepeatedScalarFieldContainer[str]
    metadata: MetadataEvent
    values: ValuesEvent
    updates: UpdatesEvent
    messages: MessagesEvent
    debug: DebugEvent
    custom: CustomEvent
    events: EventsEvent
    tasks: TasksEvent
    checkpoints: CheckpointsEvent
    tools: ToolsEvent
    error: ErrorEvent
    end: EndEvent
    def __init__(self, event_id: _Optional[str] = ..., namespace: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Union[MetadataEvent, _Mapping]] = ..., values: _Optional[_Union[ValuesEvent, _Mapping]] = ..., updates: _Optional[_Union[UpdatesEvent, _Mapping]] = ..., messages: _Optional[_Union[MessagesEvent, _Mapping]] = ..., debug: _Optional[_Union[DebugEvent, _Mapping]] = ..., custom: _Optional[_Union[CustomEvent, _Mapping]] = ..., events: _Optional[_Union[EventsEvent, _Mapping]] = ..., tasks: _Optional[_Union[TasksEvent, _Mapping]] = ..., checkpoints: _Optional[_Union[CheckpointsEvent, _Mapping]] = ..., tools: _Optional[_Union[ToolsEvent, _Mapping]] = ..., error: _Optional[_Union[ErrorEvent, _Mapping]] = ..., end: _Optional[_Union[EndEvent, _Mapping]] = ...) -> None: ...

class RunEventBatch(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[RunEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[RunEvent, _Mapping]]] = ...) -> None: ...

class CreateRunBatchRequest(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[CreateRunRequest]
    def __init__(self, runs: _Optional[_Iterable[_Union[CreateRunRequest, _Mapping]]] = ...) -> None: ...

class CreateRunBatchResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ...) -> None: ...

class DeleteRunRequest(_message.Message):
    __slots__ = ("thread_id", "run_id")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    run_id: str
    def __init__(self, thread_id: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class DeleteRunResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CancelRunsRequest(_message.Message):
    __slots__ = ("thread_id", "run_ids", "status", "action")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    status: CancelStatus
    action: CancelAction
    def __init__(self, thread_id: _Optional[str] = ..., run_ids: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[CancelStatus, str]] = ..., action: _Optional[_Union[CancelAction, str]] = ...) -> None: ...

class CancelRunsResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...
