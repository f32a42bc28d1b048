"""The thread protocol (gateway.shared.protocol) to and from the gRPC session's messages, both ways,
for the session servicer and for the bridge, which serves the JSON protocol from the session."""

from __future__ import annotations

from typing import Any

import orjson
from google.protobuf import json_format
from langgraph.gateway.v1 import runs_pb2, sessions_pb2

from gateway.shared.errors import shown
from gateway.shared.protocol import (
    AGENT_STATUSES,
    CancelRun,
    Command,
    Filter,
    Frame,
    GetTree,
    InputRespond,
    InterruptResponse,
    ProtocolError,
    RunStart,
    Subscribe,
    Unsubscribe,
    supported_channel,
)
from gateway.wire.convert import (
    CANCEL_ACTIONS,
    MULTITASK,
    MULTITASK_VALUES,
    dict_to_struct,
    struct_to_dict,
    value_to_py,
)

METHODS = {
    "lifecycle": sessions_pb2.EVENT_METHOD_LIFECYCLE,
    "values": sessions_pb2.EVENT_METHOD_VALUES,
    "updates": sessions_pb2.EVENT_METHOD_UPDATES,
    "messages": sessions_pb2.EVENT_METHOD_MESSAGES,
    "tools": sessions_pb2.EVENT_METHOD_TOOLS,
    "input.requested": sessions_pb2.EVENT_METHOD_INPUT_REQUESTED,
    "custom": sessions_pb2.EVENT_METHOD_CUSTOM,
    "tasks": sessions_pb2.EVENT_METHOD_TASKS,
    "checkpoints": sessions_pb2.EVENT_METHOD_CHECKPOINTS,
}
METHOD_NAMES = {v: k for k, v in METHODS.items()}
STATUSES = {name: i + 1 for i, name in enumerate(AGENT_STATUSES)}
STATUS_NAMES = {v: k for k, v in STATUSES.items()}


def _value(target: Any, value: Any) -> None:
    if value is not None:
        json_format.ParseDict(value, target)


# Commands


def command_to_proto(command: Command) -> sessions_pb2.SessionRequest:
    msg = sessions_pb2.SessionRequest(id=command.id)
    body = command.body
    if isinstance(body, RunStart):
        start = msg.start_run
        start.assistant_id = body.assistant_id
        _value(start.input, body.input)
        if body.config:
            start.config.CopyFrom(dict_to_struct(body.config))
        if body.metadata:
            start.metadata.CopyFrom(dict_to_struct(body.metadata))
        if body.multitask_strategy is not None:
            if body.multitask_strategy not in MULTITASK_VALUES:
                raise ProtocolError("invalid_argument", f"unknown multitask strategy {shown(body.multitask_strategy)}")
            start.multitask_strategy = MULTITASK_VALUES[body.multitask_strategy]
    elif isinstance(body, InputRespond):
        respond = msg.respond
        for r in body.responses:
            entry = respond.responses.add(interrupt_id=r.interrupt_id, namespace=list(r.namespace))
            _value(entry.response, r.response)
        _value(respond.update, body.update)
        _value(respond.goto, body.goto)
        if body.config:
            respond.config.CopyFrom(dict_to_struct(body.config))
        if body.metadata:
            respond.metadata.CopyFrom(dict_to_struct(body.metadata))
    elif isinstance(body, Subscribe):
        sub = msg.subscribe
        sub.channels.extend(sorted(body.filter.channels))
        for ns in body.filter.namespaces or ():
            sub.namespaces.add(segments=list(ns))
        if body.filter.depth is not None:
            sub.depth = body.filter.depth
        if body.since is not None:
            sub.since = body.since
        sub.subscription_id = body.subscription_id or ""
    elif isinstance(body, Unsubscribe):
        msg.unsubscribe.subscription_id = body.subscription_id
    elif isinstance(body, CancelRun):
        msg.cancel.run_id = body.run_id or ""
        msg.cancel.action = CANCEL_ACTIONS[body.action]
    elif isinstance(body, GetTree):
        msg.get_tree.run_id = body.run_id or ""
    return msg


def command_from_proto(msg: sessions_pb2.SessionRequest) -> Command:
    case = msg.WhichOneof("command")
    if case == "start_run":
        start = msg.start_run
        strategy = MULTITASK.get(start.multitask_strategy) if start.multitask_strategy else None
        if start.multitask_strategy and strategy is None:
            raise ProtocolError("invalid_argument", f"multitask_strategy: unknown value {start.multitask_strategy}")
        body: Any = RunStart(
            start.assistant_id,
            value_to_py(start, "input"),
            struct_to_dict(start, "config"),
            struct_to_dict(start, "metadata"),
            strategy,
        )
        if not start.assistant_id:
            raise ProtocolError("invalid_argument", "assistant_id is required")
    elif case == "respond":
        respond = msg.respond
        if not respond.responses:
            raise ProtocolError("invalid_argument", "responses: at least one answer is required")
        responses = []
        for entry in respond.responses:
            if not entry.interrupt_id:
                raise ProtocolError("invalid_argument", "responses: interrupt_id is required")
            responses.append(
                InterruptResponse(entry.interrupt_id, tuple(entry.namespace), value_to_py(entry, "response"))
            )
        body = InputRespond(
            tuple(responses),
            value_to_py(respond, "update"),
            value_to_py(respond, "goto"),
            struct_to_dict(respond, "config"),
            struct_to_dict(respond, "metadata"),
        )
    elif case == "subscribe":
        sub = msg.subscribe
        if not sub.channels:
            raise ProtocolError("invalid_argument", "channels is required and must not be empty")
        bad = [c for c in sub.channels if not supported_channel(c)]
        if bad:
            raise ProtocolError("invalid_argument", f"channels contains unsupported entries: {', '.join(bad[:5])}")
        namespaces = tuple(tuple(ns.segments) for ns in sub.namespaces) or None
        depth = sub.depth if sub.HasField("depth") else None
        since = sub.since if sub.HasField("since") else None
        body = Subscribe(Filter(frozenset(sub.channels), namespaces, depth), since, sub.subscription_id or None)
    elif case == "unsubscribe":
        body = Unsubscribe(msg.unsubscribe.subscription_id)
    elif case == "cancel":
        rollback = msg.cancel.action == runs_pb2.CANCEL_ACTION_ROLLBACK
        body = CancelRun(msg.cancel.run_id or None, "rollback" if rollback else "interrupt")
    elif case == "get_tree":
        body = GetTree(msg.get_tree.run_id or None)
    elif case == "open":
        raise ProtocolError("invalid_argument", "the session is open already")
    else:
        raise ProtocolError("unknown_command", "the request carries no command")
    return Command(msg.id, body)


# Replies


def _tree_to_proto(node: dict[str, Any], msg: sessions_pb2.AgentTreeNode) -> None:
    msg.namespace.extend(node.get("namespace") or ())
    msg.status = STATUSES.get(node.get("status", ""), sessions_pb2.AGENT_STATUS_UNSPECIFIED)  # type: ignore[assignment]
    msg.graph_name = node.get("graph_name", "")
    for child in node.get("children") or ():
        _tree_to_proto(child, msg.children.add())


def _tree_from_proto(msg: sessions_pb2.AgentTreeNode) -> dict[str, Any]:
    out: dict[str, Any] = {
        "namespace": list(msg.namespace),
        "status": STATUS_NAMES.get(msg.status, "started"),
        "graph_name": msg.graph_name,
    }
    if msg.children:
        out["children"] = [_tree_from_proto(c) for c in msg.children]
    return out


def reply_to_proto(command: Command, reply: dict[str, Any]) -> sessions_pb2.SessionResponse:
    """A JSON reply (gateway.shared.protocol.success or failure) to the command, as a response."""
    out = sessions_pb2.SessionResponse()
    if reply.get("type") == "error":
        out.error.id = command.id
        out.error.code = str(reply.get("error", "unknown_error"))
        out.error.message = str(reply.get("message", ""))
        return out
    result, body = out.result, command.body
    result.id = command.id
    result.applied_through_seq = int(reply.get("meta", {}).get("applied_through_seq", 0))
    data = reply.get("result") or {}
    if isinstance(body, RunStart | InputRespond):
        result.run_started.run_id = data.get("run_id", "")
    elif isinstance(body, Subscribe):
        result.subscribed.subscription_id = data.get("subscription_id", "")
        result.subscribed.replayed_events = int(data.get("replayed_events", 0))
    elif isinstance(body, Unsubscribe):
        result.unsubscribed.subscription_id = body.subscription_id
    elif isinstance(body, CancelRun):
        result.cancelled.run_ids.extend(data.get("run_ids") or ())
    elif isinstance(body, GetTree):
        _tree_to_proto(data.get("tree") or {}, result.tree)
    return out


def reply_from_proto(msg: sessions_pb2.SessionResponse) -> dict[str, Any]:
    """A result or error as the JSON protocol's reply."""
    if msg.HasField("error"):
        return {"type": "error", "id": msg.error.id, "error": msg.error.code, "message": msg.error.message}
    result = msg.result
    case = result.WhichOneof("result")
    data: dict[str, Any] = {}
    if case == "run_started":
        data = {"run_id": result.run_started.run_id}
    elif case == "subscribed":
        data = {
            "subscription_id": result.subscribed.subscription_id,
            "replayed_events": result.subscribed.replayed_events,
        }
    elif case == "cancelled":
        data = {"run_ids": list(result.cancelled.run_ids)}
    elif case == "tree":
        data = {"tree": _tree_from_proto(result.tree)}
    return {
        "type": "success",
        "id": result.id,
        "result": data,
        "meta": {"applied_through_seq": result.applied_through_seq},
    }


# Events


def frame_to_proto(frame: Frame, msg: sessions_pb2.ProtocolEvent) -> None:
    msg.seq = frame.seq
    msg.event_id = frame.event_id
    msg.method = METHODS[frame.method]
    msg.namespace.extend(frame.ns)
    msg.timestamp = frame.timestamp
    msg.node = frame.node or ""
    msg.data_json = frame.data.decode()
    msg.subscription_id = frame.subscription_id
    if frame.method == "lifecycle":
        data = orjson.loads(frame.data)
        detail = msg.lifecycle
        detail.status = STATUSES.get(data.get("event", ""), sessions_pb2.AGENT_STATUS_UNSPECIFIED)  # type: ignore[assignment]
        detail.graph_name = data.get("graph_name", "")
        detail.error = data.get("error") or ""
    elif frame.method == "input.requested":
        msg.input_requested.interrupt_id = orjson.loads(frame.data).get("interrupt_id", "")


def frame_from_proto(msg: sessions_pb2.ProtocolEvent) -> Frame:
    return Frame(
        msg.seq,
        METHOD_NAMES.get(msg.method, "custom"),
        tuple(msg.namespace),
        msg.timestamp,
        msg.data_json.encode(),
        msg.node or None,
        msg.subscription_id,
    )
