"""Translation between the protobuf API and the core's records and events, and the enum tables
both ways (the gRPC edge reads requests and writes replies here; the bridge the reverse, in
gateway.wire.agent_json)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar, cast

import orjson
from google.protobuf import json_format, struct_pb2, timestamp_pb2
from langgraph.gateway.v1 import assistants_pb2, crons_pb2, runs_pb2, threads_pb2

from gateway.shared.errors import InvalidArgument
from gateway.shared.records import (
    AssistantRecord,
    CronRecord,
    Durability,
    Event,
    IfNotExists,
    MultitaskStrategy,
    OnDisconnect,
    RunCreate,
    RunRecord,
    RunStatus,
    ThreadRecord,
)
from gateway.shared.serde import MAX_NESTING, check_nesting, dumps
from gateway.wire.events import RUN_EVENT_CASES

S = TypeVar("S", bound=str)

# Large `values` snapshots exceed gRPC's 4 MiB default; clients (and grpcurl's
# -max-msg-sz) must raise their receive limit to match.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# The initial metadata of a thread stream the gateway accepted (JoinThreadStream): before any
# event, which may come much later, the caller knows that the request was good.
SUBSCRIBED = "x-subscribed"

STREAM_MODE_NAMES = {
    runs_pb2.STREAM_MODE_VALUES: "values",
    runs_pb2.STREAM_MODE_UPDATES: "updates",
    runs_pb2.STREAM_MODE_MESSAGES_TUPLE: "messages-tuple",
    runs_pb2.STREAM_MODE_MESSAGES: "messages",
    runs_pb2.STREAM_MODE_DEBUG: "debug",
    runs_pb2.STREAM_MODE_CUSTOM: "custom",
    runs_pb2.STREAM_MODE_EVENTS: "events",
    runs_pb2.STREAM_MODE_TASKS: "tasks",
    runs_pb2.STREAM_MODE_CHECKPOINTS: "checkpoints",
    runs_pb2.STREAM_MODE_TOOLS: "tools",
}
RUN_STATUSES: dict[str, runs_pb2.RunStatus] = {
    "pending": runs_pb2.RUN_STATUS_PENDING,
    "running": runs_pb2.RUN_STATUS_RUNNING,
    "success": runs_pb2.RUN_STATUS_SUCCESS,
    "error": runs_pb2.RUN_STATUS_ERROR,
    "timeout": runs_pb2.RUN_STATUS_TIMEOUT,
    "interrupted": runs_pb2.RUN_STATUS_INTERRUPTED,
}
RUN_STATUS_NAMES = cast(dict[int, RunStatus], {v: k for k, v in RUN_STATUSES.items()})
THREAD_STATUSES = {
    "idle": threads_pb2.THREAD_STATUS_IDLE,
    "busy": threads_pb2.THREAD_STATUS_BUSY,
    "interrupted": threads_pb2.THREAD_STATUS_INTERRUPTED,
    "error": threads_pb2.THREAD_STATUS_ERROR,
}
THREAD_STATUS_NAMES = {v: k for k, v in THREAD_STATUSES.items()}
MULTITASK: dict[runs_pb2.MultitaskStrategy, MultitaskStrategy] = {
    runs_pb2.MULTITASK_STRATEGY_REJECT: "reject",
    runs_pb2.MULTITASK_STRATEGY_INTERRUPT: "interrupt",
    runs_pb2.MULTITASK_STRATEGY_ROLLBACK: "rollback",
    runs_pb2.MULTITASK_STRATEGY_ENQUEUE: "enqueue",
}
MULTITASK_VALUES = {v: k for k, v in MULTITASK.items()}
ON_RUN_COMPLETED = {"delete": crons_pb2.ON_RUN_COMPLETED_DELETE, "keep": crons_pb2.ON_RUN_COMPLETED_KEEP}
ON_RUN_COMPLETED_NAMES = {v: k for k, v in ON_RUN_COMPLETED.items()}
SCHEMAS = ("input_schema", "output_schema", "state_schema", "config_schema", "context_schema")
ON_DISCONNECT_NAMES: dict[runs_pb2.OnDisconnect, OnDisconnect] = {
    runs_pb2.ON_DISCONNECT_CONTINUE: "continue",
    runs_pb2.ON_DISCONNECT_CANCEL: "cancel",
}
IF_NOT_EXISTS_NAMES: dict[runs_pb2.IfNotExists, IfNotExists] = {
    runs_pb2.IF_NOT_EXISTS_REJECT: "reject",
    runs_pb2.IF_NOT_EXISTS_CREATE: "create",
}
DURABILITY_NAMES: dict[runs_pb2.Durability, Durability] = {
    runs_pb2.DURABILITY_SYNC: "sync",
    runs_pb2.DURABILITY_ASYNC: "async",
    runs_pb2.DURABILITY_EXIT: "exit",
}
CANCEL_ACTIONS = {"interrupt": runs_pb2.CANCEL_ACTION_INTERRUPT, "rollback": runs_pb2.CANCEL_ACTION_ROLLBACK}
CANCEL_STATUSES = {
    "pending": runs_pb2.CANCEL_STATUS_PENDING,
    "running": runs_pb2.CANCEL_STATUS_RUNNING,
    "all": runs_pb2.CANCEL_STATUS_ALL,
}


def _plain(value: Any) -> Any:
    # protobuf's JSON numbers are doubles; integral ones go back to ints, as JSON clients mean them.
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def struct_to_dict(msg: Any, field: str, *, levels: int = MAX_NESTING) -> dict[str, Any]:
    """A request's Struct field, refused (InvalidArgument naming it) if it holds NaN or an
    infinity or nests past `levels`: the gateway could not send it back."""
    if not msg.HasField(field):
        return {}
    value: dict[str, Any] = _request_json(msg, field, levels)
    return value


def value_to_py(msg: Any, field: str) -> Any:
    """A request's Value field, None if unset; refused as struct_to_dict refuses."""
    if not msg.HasField(field):
        return None
    return _request_json(msg, field, MAX_NESTING)


def _request_json(msg: Any, field: str, levels: int) -> Any:
    try:
        value = json_format.MessageToDict(getattr(msg, field))
    except ValueError:
        # json_format's words for a number JSON has not: "Fail to serialize NaN for Value...".
        raise InvalidArgument(f"{field} holds NaN or an infinity: a JSON number is finite") from None
    check_nesting(value, field, levels)
    return _plain(value)


def reply_to_dict(msg: Any, field: str) -> dict[str, Any]:
    """A reply's Struct field (the bridge's reading): the gateway checked it on the way in."""
    if not msg.HasField(field):
        return {}
    return _plain(json_format.MessageToDict(getattr(msg, field)))


def dict_to_struct(value: dict[str, Any] | None) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    if value:
        # Round-trip through JSON so that non-JSON types (UUIDs, datetimes) arrive as strings.
        struct.update(orjson.loads(orjson.dumps(value, default=str)))
    return struct


def timestamp(iso: str | None) -> timestamp_pb2.Timestamp | None:
    """None for a time that is not set: the field stays absent, as HTTP's null (an empty
    Timestamp would read as 1970-01-01)."""
    if not iso:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(datetime.fromisoformat(iso))
    return ts


def _enum(value: int, names: Mapping[Any, S], field: str, default: S) -> S:
    if value == 0:
        return default
    try:
        return names[value]
    except KeyError:
        raise InvalidArgument(f"{field}: unknown value {value}") from None


def _nodes(values: Any, field: str) -> list[str] | str | None:
    nodes = list(values)
    if not nodes:
        return None
    if nodes == ["*"]:
        return "*"
    if "*" in nodes:
        raise InvalidArgument(f'{field}: "*" must be the only item')
    return nodes


def stream_modes(values: Any) -> list[str]:
    modes = []
    for index, value in enumerate(values):
        if value == runs_pb2.STREAM_MODE_UNSPECIFIED:
            continue
        try:
            mode = STREAM_MODE_NAMES[value]
        except KeyError:
            field = f"stream_mode[{index}]"
            raise InvalidArgument(f"{field}: unknown value {value}", field=field) from None
        if mode not in modes:
            modes.append(mode)
    return modes


def run_create(request: runs_pb2.CreateRunRequest) -> RunCreate:
    command = struct_to_dict(request, "command") if request.HasField("command") else None
    return RunCreate(
        assistant_id=request.assistant_id,
        thread_id=request.thread_id or None,
        input=value_to_py(request, "input"),
        command=command,
        config=struct_to_dict(request, "config"),
        context=struct_to_dict(request, "context"),
        metadata=struct_to_dict(request, "metadata"),
        stream_mode=stream_modes(request.stream_mode) or ["values"],
        stream_subgraphs=request.stream_subgraphs,
        stream_resumable=request.stream_resumable,
        on_disconnect=_enum(request.on_disconnect, ON_DISCONNECT_NAMES, "on_disconnect", "continue"),
        multitask_strategy=_enum(request.multitask_strategy, MULTITASK, "multitask_strategy", "enqueue"),
        if_not_exists=_enum(request.if_not_exists, IF_NOT_EXISTS_NAMES, "if_not_exists", "reject"),
        interrupt_before=_nodes(request.interrupt_before, "interrupt_before"),
        interrupt_after=_nodes(request.interrupt_after, "interrupt_after"),
        checkpoint_id=request.checkpoint_id or None,
        durability=_enum(request.durability, DURABILITY_NAMES, "durability", "async"),
        on_completion="keep" if request.keep_thread else "delete",
        request_id=request.request_id or None,
    )


def assistant(record: AssistantRecord) -> assistants_pb2.Assistant:
    return assistants_pb2.Assistant(
        assistant_id=record.assistant_id,
        graph_id=record.graph_id,
        config=dict_to_struct(record.config),
        context=dict_to_struct(record.context),
        metadata=dict_to_struct(record.metadata),
        name=record.name,
        description=record.description or "",
        version=record.version,
        created_at=timestamp(record.created_at),
        updated_at=timestamp(record.updated_at),
    )


def thread(record: ThreadRecord) -> threads_pb2.Thread:
    return threads_pb2.Thread(
        thread_id=record.thread_id,
        created_at=timestamp(record.created_at),
        updated_at=timestamp(record.updated_at),
        metadata=dict_to_struct(record.metadata),
        status=THREAD_STATUSES.get(record.status, threads_pb2.THREAD_STATUS_UNSPECIFIED),
        values_json=record.values.decode(),
        interrupts_json=record.interrupts.decode(),
        error_json="" if record.error == b"null" else record.error.decode(),
        state_updated_at=timestamp(record.state_updated_at),
        config=dict_to_struct(record.config),
    )


def moment(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def cron(record: CronRecord) -> crons_pb2.Cron:
    return crons_pb2.Cron(
        cron_id=record.cron_id,
        assistant_id=record.assistant_id,
        thread_id=record.thread_id or "",
        user_id=record.user_id or "",
        schedule=record.schedule,
        timezone=record.timezone or "",
        end_time=moment(record.end_time),
        next_run_date=moment(record.next_run_date),
        payload=dict_to_struct(record.payload),
        metadata=dict_to_struct(record.metadata),
        on_run_completed=ON_RUN_COMPLETED.get(record.on_run_completed or "", crons_pb2.ON_RUN_COMPLETED_UNSPECIFIED),
        enabled=record.enabled,
        created_at=timestamp(record.created_at),
        updated_at=timestamp(record.updated_at),
    )


def schemas(json: dict[str, Any]) -> assistants_pb2.AssistantSchemas:
    return assistants_pb2.AssistantSchemas(
        graph_id=json.get("graph_id") or "",
        **{f"{name}_json": _json(json.get(name)) for name in SCHEMAS},
    )


def _checkpoint(ref: dict[str, Any] | None) -> threads_pb2.Checkpoint | None:
    if not ref:
        return None
    return threads_pb2.Checkpoint(
        thread_id=ref.get("thread_id", ""),
        checkpoint_ns=ref.get("checkpoint_ns", ""),
        checkpoint_id=ref.get("checkpoint_id", ""),
    )


def _json(value: Any) -> str:
    return dumps(value).decode()


def thread_state(state: dict[str, Any]) -> threads_pb2.ThreadState:
    return threads_pb2.ThreadState(
        values_json=_json(state["values"]),
        next=state["next"],
        tasks_json=_json(state["tasks"]),
        metadata_json=_json(state["metadata"]),
        created_at=timestamp(state["created_at"]),
        checkpoint=_checkpoint(state["checkpoint"]),
        parent_checkpoint=_checkpoint(state["parent_checkpoint"]),
        interrupts_json=_json(state["interrupts"]),
    )


def run(record: RunRecord) -> runs_pb2.Run:
    return runs_pb2.Run(
        run_id=record.run_id,
        thread_id=record.thread_id,
        assistant_id=record.assistant_id,
        status=RUN_STATUSES.get(record.status, runs_pb2.RUN_STATUS_UNSPECIFIED),
        metadata=dict_to_struct(record.metadata),
        multitask_strategy=MULTITASK_VALUES.get(record.multitask_strategy, runs_pb2.MULTITASK_STRATEGY_UNSPECIFIED),
        created_at=timestamp(record.created_at),
        updated_at=timestamp(record.updated_at),
        kwargs=dict_to_struct(record.kwargs),
    )


def run_event(base_ms: int, thread_id: str, event: Event) -> runs_pb2.RunEvent | None:
    """One core event as a RunEvent; None for events the API does not stream."""
    msg = runs_pb2.RunEvent()
    return msg if fill_run_event(msg, base_ms, thread_id, event) else None


def fill_run_event(msg: runs_pb2.RunEvent, base_ms: int, thread_id: str, event: Event) -> bool:
    """Writes one core event into a RunEvent; the payload text passes through as it was encoded."""
    if event.seq:
        msg.event_id = f"{base_ms}-{event.seq}"
    if event.ns:
        msg.namespace.extend(event.ns)
    name = event.name
    case = RUN_EVENT_CASES.get(name)
    if case is not None:
        part = getattr(msg, case[0])
        part.json = event.data.decode()
        if case[1]:
            part.kind = case[1]
    elif name == "metadata":
        meta = orjson.loads(event.data)
        msg.metadata.run_id = meta["run_id"]
        msg.metadata.attempt = meta.get("attempt", 1)
        msg.metadata.thread_id = thread_id
    elif name == "error":
        err = orjson.loads(event.data)
        msg.error.error = str(err.get("error", ""))
        msg.error.message = str(err.get("message", ""))
    elif name == "end":
        msg.end.status = RUN_STATUSES.get(orjson.loads(event.data)["status"], runs_pb2.RUN_STATUS_UNSPECIFIED)
    else:
        return False
    return True
