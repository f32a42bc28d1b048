from google.protobuf import struct_pb2 as _struct_pb2
from langgraph.gateway.v1 import runs_pb2 as _runs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_METHOD_UNSPECIFIED: _ClassVar[EventMethod]
    EVENT_METHOD_LIFECYCLE: _ClassVar[EventMethod]
    EVENT_METHOD_VALUES: _ClassVar[EventMethod]
    EVENT_METHOD_UPDATES: _ClassVar[EventMethod]
    EVENT_METHOD_MESSAGES: _ClassVar[EventMethod]
    EVENT_METHOD_TOOLS: _ClassVar[EventMethod]
    EVENT_METHOD_INPUT_REQUESTED: _ClassVar[EventMethod]
    EVENT_METHOD_CUSTOM: _ClassVar[EventMethod]
    EVENT_METHOD_TASKS: _ClassVar[EventMethod]
    EVENT_METHOD_CHECKPOINTS: _ClassVar[EventMethod]

class AgentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_STATUS_UNSPECIFIED: _ClassVar[AgentStatus]
    AGENT_STATUS_STARTED: _ClassVar[AgentStatus]
    AGENT_STATUS_RUNNING: _ClassVar[AgentStatus]
    AGENT_STATUS_COMPLETED: _ClassVar[AgentStatus]
    AGENT_STATUS_FAILED: _ClassVar[AgentStatus]
    AGENT_STATUS_INTERRUPTED: _ClassVar[AgentStatus]
EVENT_METHOD_UNSPECIFIED: EventMethod
EVENT_METHOD_LIFECYCLE: EventMethod
EVENT_METHOD_VALUES: EventMethod
EVENT_METHOD_UPDATES: EventMethod
EVENT_METHOD_MESSAGES: EventMethod
EVENT_METHOD_TOOLS: EventMethod
EVENT_METHOD_INPUT_REQUESTED: EventMethod
EVENT_METHOD_CUSTOM: EventMethod
EVENT_METHOD_TASKS: EventMethod
EVENT_METHOD_CHECKPOINTS: EventMethod
AGENT_STATUS_UNSPECIFIED: AgentStatus
AGENT_STATUS_STARTED: AgentStatus
AGENT_STATUS_RUNNING: AgentStatus
AGENT_STATUS_COMPLETED: AgentStatus
AGENT_STATUS_FAILED: AgentStatus
AGENT_STATUS_INTERRUPTED: AgentStatus

class OpenSession(_message.Message):
    __slots__ = ("thread_id",)
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    def __init__(self, thread_id: _Optional[str] = ...) -> None: ...

class StartRun(_message.Message):
    __slots__ = ("assistant_id", "input", "config", "metadata", "multitask_strategy")
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    MULTITASK_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    assistant_id: str
    input: _struct_pb2.Value
    config: _struct_pb2.Struct
    metadata: _struct_pb2.Struct
    multitask_strategy: _runs_pb2.MultitaskStrategy
    def __init__(self, assistant_id: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., multitask_strategy: _Optional[_Union[_runs_pb2.MultitaskStrategy, str]] = ...) -> None: ...

class InterruptResponse(_message.Message):
    __slots__ = ("interrupt_id", "namespace", "response")
    INTERRUPT_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    interrupt_id: str
    namespace: _containers.RepeatedScalarFieldContainer[str]
    response: _struct_pb2.Value
    def __init__(self, interrupt_id: _Optional[str] = ..., namespace: _Optional[_Iterable[str]] = ..., response: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class RespondToInterrupts(_message.Message):
    __slots__ = ("responses", "update", "goto", "config", "metadata")
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    GOTO_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[InterruptResponse]
    update: _struct_pb2.Value
    goto: _struct_pb2.Value
    config: _struct_pb2.Struct
    metadata: _struct_pb2.Struct
    def __init__(self, responses: _Optional[_Iterable[_Union[InterruptResponse, _Mapping]]] = ..., update: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., goto: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Namespace(_message.Message):
    __slots__ = ("segments",)
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    segments: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, segments: _Optional[_Iterable[str]] = ...) -> None: ...

class Subscribe(_message.Message):
    __slots__ = ("channels", "namespaces", "depth", "since", "subscription_id")
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedScalarFieldContainer[str]
    namespaces: _containers.RepeatedCompositeFieldContainer[Namespace]
    depth: int
    since: int
    subscription_id: str
    def __init__(self, channels: _Optional[_Iterable[str]] = ..., namespaces: _Optional[_Iterable[_Union[Namespace, _Mapping]]] = ..., depth: _Optional[int] = ..., since: _Optional[int] = ..., subscription_id: _Optional[str] = ...) -> None: ...

class Unsubscribe(_message.Message):
    __slots__ = ("subscription_id",)
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    subscription_id: str
    def __init__(self, subscription_id: _Optional[str] = ...) -> None: ...

class CancelRuns(_message.Message):
    __slots__ = ("run_id", "action")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    action: _runs_pb2.CancelAction
    def __init__(self, run_id: _Optional[str] = ..., action: _Optional[_Union[_runs_pb2.CancelAction, str]] = ...) -> None: ...

class GetAgentTree(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class SessionRequest(_message.Message):
    __slots__ = ("id", "open", "start_run", "respond", "subscribe", "unsubscribe", "cancel", "get_tree")
    ID_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    START_RUN_FIELD_NUMBER: _ClassVar[int]
    RESPOND_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    UNSUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    GET_TREE_FIELD_NUMBER: _ClassVar[int]
    id: int
    open: OpenSession
    start_run: StartRun
    respond: RespondToInterrupts
    subscribe: Subscribe
    unsubscribe: Unsubscribe
    cancel: CancelRuns
    get_tree: GetAgentTree
    def __init__(self, id: _Optional[int] = ..., open: _Optional[_Union[OpenSession, _Mapping]] = ..., start_run: _Optional[_Union[StartRun, _Mapping]] = ..., respond: _Optional[_Union[RespondToInterrupts, _Mapping]] = ..., subscribe: _Optional[_Union[Subscribe, _Mapping]] = ..., unsubscribe: _Optional[_Union[Unsubscribe, _Mapping]] = ..., cancel: _Optional[_Union[CancelRuns, _Mapping]] = ..., get_tree: _Optional[_Union[GetAgentTree, _Mapping]] = ...) -> None: ...

class SessionOpened(_message.Message):
    __slots__ = ("thread_id",)
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    def __init__(self, thread_id: _Optional[str] = ...) -> None: ...

class RunStarted(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class Subscribed(_message.Message):
    __slots__ = ("subscription_id", "replayed_events")
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    subscription_id: str
    replayed_events: int
    def __init__(self, subscription_id: _Optional[str] = ..., replayed_events: _Optional[int] = ...) -> None: ...

class Unsubscribed(_message.Message):
    __slots__ = ("subscription_id",)
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    subscription_id: str
    def __init__(self, subscription_id: _Optional[str] = ...) -> None: ...

class Cancelled(_message.Message):
    __slots__ = ("run_ids",)
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class AgentTreeNode(_message.Message):
    __slots__ = ("namespace", "status", "graph_name", "children")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    GRAPH_NAME_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    namespace: _containers.RepeatedScalarFieldContainer[str]
    status: AgentStatus
    graph_name: str
    children: _containers.RepeatedCompositeFieldContainer[AgentTreeNode]
    def __init__(self, namespace: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[AgentStatus, str]] = ..., graph_name: _Optional[str] = ..., children: _Optional[_Iterable[_Union[AgentTreeNode, _Mapping]]] = ...) -> None: ...

class CommandResult(_message.Message):
    __slots__ = ("id", "applied_through_seq", "opened", "run_started", "subscribed", "unsubscribed", "cancelled", "tree")
    ID_FIELD_NUMBER: _ClassVar[int]
    APPLIED_THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    OPENED_FIELD_NUMBER: _ClassVar[int]
    RUN_STARTED_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    UNSUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    TREE_FIELD_NUMBER: _ClassVar[int]
    id: int
    applied_through_seq: int
    opened: SessionOpened
    run_started: RunStarted
    subscribed: Subscribed
    unsubscribed: Unsubscribed
    cancelled: Cancelled
    tree: AgentTreeNode
    def __init__(self, id: _Optional[int] = ..., applied_through_seq: _Optional[int] = ..., opened: _Optional[_Union[SessionOpened, _Mapping]] = ..., run_started: _Optional[_Union[RunStarted, _Mapping]] = ..., subscribed: _Optional[_Union[Subscribed, _Mapping]] = ..., unsubscribed: _Optional[_Union[Unsubscribed, _Mapping]] = ..., cancelled: _Optional[_Union[Cancelled, _Mapping]] = ..., tree: _Optional[_Union[AgentTreeNode, _Mapping]] = ...) -> None: ...

class CommandError(_message.Message):
    __slots__ = ("id", "code", "message")
    ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    id: int
    code: str
    message: str
    def __init__(self, id: _Optional[int] = ..., code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class LifecycleDetail(_message.Message):
    __slots__ = ("status", "graph_name", "error")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    GRAPH_NAME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    status: AgentStatus
    graph_name: str
    error: str
    def __init__(self, status: _Optional[_Union[AgentStatus, str]] = ..., graph_name: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class InputRequestedDetail(_message.Message):
    __slots__ = ("interrupt_id",)
    INTERRUPT_ID_FIELD_NUMBER: _ClassVar[int]
    interrupt_id: str
    def __init__(self, interrupt_id: _Optional[str] = ...) -> None: ...

class ProtocolEvent(_message.Message):
    __slots__ = ("seq", "event_id", "method", "namespace", "timestamp", "node", "data_json", "subscription_id", "lifecycle", "input_requested")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_FIELD_NUMBER: _ClassVar[int]
    INPUT_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    seq: int
    event_id: str
    method: EventMethod
    namespace: _containers.RepeatedScalarFieldContainer[str]
    timestamp: int
    node: str
    data_json: str
    subscription_id: str
    lifecycle: LifecycleDetail
    input_requested: InputRequestedDetail
    def __init__(self, seq: _Optional[int] = ..., event_id: _Optional[str] = ..., method: _Optional[_Union[EventMethod, str]] = ..., namespace: _Optional[_Iterable[str]] = ..., timestamp: _Optional[int] = ..., node: _Optional[str] = ..., data_json: _Optional[str] = ..., subscription_id: _Optional[str] = ..., lifecycle: _Optional[_Union[LifecycleDetail, _Mapping]] = ..., input_requested: _Optional[_Union[InputRequestedDetail, _Mapping]] = ...) -> None: ...

class ProtocolEventBatch(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[ProtocolEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[ProtocolEvent, _Mapping]]] = ...) -> None: ...

class SessionResponse(_message.Message):
    __slots__ = ("result", "error", "events")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    result: CommandResult
    error: CommandError
    events: ProtocolEventBatch
    def __init__(self, result: _Optional[_Union[CommandResult, _Mapping]] = ..., error: _Optional[_Union[CommandError, _Mapping]] = ..., events: _Optional[_Union[ProtocolEventBatch, _Mapping]] = ...) -> None: ...
