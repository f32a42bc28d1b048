"""The Agent Server's JSON (the HTTP API's bodies) to and from the protobuf API's messages: the
bridge reads the gateway's replies here, and builds its requests. Graph data arrive as JSON text
and go out as orjson Fragments, undecoded."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import Message
from langgraph.gateway.v1 import assistants_pb2, crons_pb2, runs_pb2, store_pb2, threads_pb2

from gateway.shared.errors import InvalidArgument, shown
from gateway.shared.records import RunCreate
from gateway.wire import convert

Json = dict[str, Any]

# The HTTP API's names -> the enums' numbers (the inverses of gateway.wire.convert's tables).
STREAM_MODES = {name: value for value, name in convert.STREAM_MODE_NAMES.items()}
_ON_DISCONNECT = {name: value for value, name in convert.ON_DISCONNECT_NAMES.items()}
_IF_NOT_EXISTS = {name: value for value, name in convert.IF_NOT_EXISTS_NAMES.items()}
_DURABILITY = {name: value for value, name in convert.DURABILITY_NAMES.items()}


def _iso(ts: timestamp_pb2.Timestamp) -> str | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToDatetime(tzinfo=UTC).isoformat()


def _fragment(text: str, default: bytes) -> orjson.Fragment:
    return orjson.Fragment(text.encode() if text else default)


def struct(value: dict[str, Any] | None) -> struct_pb2.Struct:
    # The HTTP edge refused fields nested deeper than a Struct carries (serde.MAX_NESTING).
    return convert.dict_to_struct(value)


def run_request(req: RunCreate) -> runs_pb2.CreateRunRequest:
    nodes = {name: getattr(req, name) for name in ("interrupt_before", "interrupt_after")}
    msg = runs_pb2.CreateRunRequest(
        assistant_id=req.assistant_id,
        thread_id=req.thread_id or "",
        stream_mode=[STREAM_MODES[m] for m in req.stream_mode],
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
    with fits("input"):
        if req.input is not None:
            json_format.ParseDict(req.input, msg.input)
    with fits("command"):
        if req.command is not None:
            msg.command.CopyFrom(struct(req.command))
    for name in ("config", "context", "metadata"):
        value = getattr(req, name)
        with fits(name):
            if value:
                getattr(msg, name).CopyFrom(struct(value))
    return msg


@contextmanager
def fits(name: str) -> Iterator[None]:
    """A value protobuf cannot carry (nested past its recursion limit) is the client's error."""
    try:
        yield
    except (json_format.ParseError, RecursionError, ValueError) as exc:
        raise InvalidArgument(f"{name} cannot be sent to the gateway: {exc}") from None


def run_json(msg: runs_pb2.Run) -> Json:
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


def thread_json(msg: threads_pb2.Thread) -> Json:
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


def checkpoint_json(msg: threads_pb2.Checkpoint) -> Json | None:
    if not msg.checkpoint_id:
        return None
    return {"checkpoint_id": msg.checkpoint_id, "thread_id": msg.thread_id, "checkpoint_ns": msg.checkpoint_ns}


def state_json(msg: threads_pb2.ThreadState) -> Json:
    checkpoint = checkpoint_json(msg.checkpoint) if msg.HasField("checkpoint") else None
    parent = checkpoint_json(msg.parent_checkpoint) if msg.HasField("parent_checkpoint") else None
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


def assistant_json(msg: assistants_pb2.Assistant) -> Json:
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


def version_json(msg: assistants_pb2.Assistant) -> Json:
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


def schemas_json(msg: assistants_pb2.AssistantSchemas, *, with_graph: bool = True) -> Json:
    schemas = {name: _fragment(getattr(msg, f"{name}_json"), b"null") for name in convert.SCHEMAS}
    return {"graph_id": msg.graph_id, **schemas} if with_graph else schemas


def cron_json(msg: crons_pb2.Cron) -> Json:
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


def cron_fields(body: Json, msg: crons_pb2.CreateCronRequest | crons_pb2.UpdateCronRequest) -> None:
    """Sets the cron's own fields of `msg` from the HTTP cron body; the rest is its payload."""
    with fits("the cron's run fields"):
        msg.payload.CopyFrom(struct({k: v for k, v in body.items() if k not in _CRON_FIELDS}))
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
        with fits("metadata"):
            msg.metadata.CopyFrom(struct(body["metadata"]))


def store_item_json(msg: store_pb2.Item, *, scored: bool) -> Json:
    item: Json = {
        "namespace": list(msg.namespace),
        "key": msg.key,
        "value": orjson.Fragment(msg.value_json.encode() or b"{}"),
        "created_at": msg.created_at.ToDatetime(tzinfo=UTC).isoformat(),
        "updated_at": msg.updated_at.ToDatetime(tzinfo=UTC).isoformat(),
    }
    if scored:
        item["score"] = msg.score if msg.HasField("score") else None
    return item


def thread_status(status: str | None) -> int:
    """A thread status filter: unset for none, refused if not one of the statuses."""
    value = convert.THREAD_STATUSES.get(status or "", threads_pb2.THREAD_STATUS_UNSPECIFIED)
    if status and not value:
        raise InvalidArgument(f"status {shown(status)} is not one of: {', '.join(convert.THREAD_STATUSES)}")
    return value


def cancel_action(action: str) -> runs_pb2.CancelAction:
    return convert.CANCEL_ACTIONS["rollback" if action == "rollback" else "interrupt"]


def fill(msg: Message, fields: Mapping[str, Any]) -> Message:
    """Sets `msg`'s fields of these names: None leaves a field unset, an object fills a Struct (or
    a Value, as JSON), a list a repeated field; enums arrive as their numbers. A value protobuf
    cannot carry is the client's error, naming the field."""
    descriptors = msg.DESCRIPTOR.fields_by_name
    for name, value in fields.items():
        if value is None:
            continue
        field = descriptors.get(name)
        if field is None:
            raise TypeError(f"{msg.DESCRIPTOR.name} has no field {name!r}")
        if field.is_repeated:
            getattr(msg, name).extend(value)
        elif field.message_type is None:
            setattr(msg, name, value)
        else:
            with fits(name):
                if field.message_type.full_name == "google.protobuf.Struct":
                    getattr(msg, name).CopyFrom(struct(value))
                else:
                    json_format.ParseDict(value, getattr(msg, name))
    return msg


def create_cron_request(body: Json, *, thread_id: str | None) -> crons_pb2.CreateCronRequest:
    request = crons_pb2.CreateCronRequest(thread_id=thread_id or "")
    cron_fields(body, request)
    return request


def update_cron_request(cron_id: str, body: Json) -> crons_pb2.UpdateCronRequest:
    request = crons_pb2.UpdateCronRequest(cron_id=cron_id)
    cron_fields(body, request)
    if not body:
        # An empty body is the gateway's to refuse, as any other.
        request.ClearField("payload")
    if "end_time" in body and body["end_time"] is None:
        request.clear_end_time = True
    return request


def run_batch_request(reqs: list[RunCreate]) -> runs_pb2.CreateRunBatchRequest:
    return runs_pb2.CreateRunBatchRequest(runs=[run_request(req) for req in reqs])


def state_update_json(msg: threads_pb2.UpdateThreadStateResponse) -> Json:
    config = convert.reply_to_dict(msg, "checkpoint")
    # `configurable` and `checkpoint_id` are the Agent Server's deprecated spellings.
    return {"checkpoint": config, "configurable": config, "checkpoint_id": config.get("checkpoint_id")}


def graph_json(msg: assistants_pb2.AssistantGraph) -> Json:
    graph: Json = orjson.loads(msg.graph_json or "{}")
    return graph


def subgraphs_json(msg: assistants_pb2.GetAssistantSubgraphsResponse) -> Json:
    return {ns: schemas_json(schemas, with_graph=False) for ns, schemas in msg.subgraphs.items()}
