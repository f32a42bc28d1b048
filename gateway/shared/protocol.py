"""The thread protocol on the wire: LangChain's `langchain_protocol`, which the LangGraph SDKs'
`threads.stream()` speaks to `POST /threads/{id}/commands` and `/threads/{id}/stream/events`
(SSE, or commands and events on one WebSocket). Channels, subscription filters, commands as
the edges parse them, replies, and the event envelope, encoded once per event.

The run core, both edges and the bridge import this module; it imports nothing of theirs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from gateway.shared.errors import (
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
    shown,
)
from gateway.shared.serde import MAX_NESTING, too_deep

CHANNELS = ("values", "updates", "messages", "tools", "lifecycle", "input", "checkpoints", "tasks", "custom")
# An event's method, and the channel it is subscribed to by.
METHODS = {
    "values": "values",
    "updates": "updates",
    "messages": "messages",
    "tools": "tools",
    "lifecycle": "lifecycle",
    "input.requested": "input",
    "checkpoints": "checkpoints",
    "tasks": "tasks",
    "custom": "custom",
}
# Lifecycle statuses (the protocol's AgentStatus); "running" is the root's, "started" a subgraph's.
AGENT_STATUSES = ("started", "running", "completed", "failed", "interrupted")

Namespace = tuple[str, ...]


class ProtocolError(Exception):
    """A command that failed: the reply is `{"type": "error", "id", "error": code, "message"}`.

    `code` is one of the protocol's error codes (invalid_argument, unknown_command,
    no_such_run, no_such_subscription, no_such_interrupt, unknown_error, ...) or, for what the
    protocol has no code for, the gateway's own: not_found, conflict, resource_exhausted,
    unavailable, unauthenticated, permission_denied, expired, internal."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_ERROR_CODES: tuple[tuple[type[GatewayError], str], ...] = (
    (InvalidArgument, "invalid_argument"),
    (BadRequest, "invalid_argument"),
    (NotFound, "not_found"),
    (TooManyRuns, "resource_exhausted"),
    (SubscriberTooSlow, "resource_exhausted"),
    (Conflict, "conflict"),
    (EventsExpired, "expired"),
    (Unauthenticated, "unauthenticated"),
    (PermissionDenied, "permission_denied"),
    (Unavailable, "unavailable"),
)


def error_code(exc: GatewayError) -> str:
    if isinstance(exc, NotFound) and exc.http_status == 422:
        return "invalid_argument"  # an assistant that is no graph's name, as the Agent Server says
    for kind, code in _ERROR_CODES:
        if isinstance(exc, kind):
            return code
    return "internal"


def _bad(message: str) -> ProtocolError:
    return ProtocolError("invalid_argument", message)


# Filters


def supported_channel(channel: object) -> bool:
    return isinstance(channel, str) and (channel in CHANNELS or (channel.startswith("custom:") and len(channel) > 7))


def segment_matches(candidate: str, segment: str) -> bool:
    # A segment without ":" names a node and matches any of its tasks ("node" ~ "node:<task id>").
    return candidate == segment or (":" not in segment and candidate.partition(":")[0] == segment)


@dataclass(frozen=True)
class Filter:
    """Which events a subscription receives: its channels, and namespace prefixes with at most
    `depth` more segments (none: any namespace, any depth)."""

    channels: frozenset[str]
    namespaces: tuple[Namespace, ...] | None = None
    depth: int | None = None

    def wants(self, channel: str, custom_name: str | None = None) -> bool:
        if channel in self.channels:
            return True
        return custom_name is not None and f"custom:{custom_name}" in self.channels

    def covers(self, ns: Sequence[str]) -> bool:
        if not self.namespaces:
            return True
        for prefix in self.namespaces:
            if len(prefix) > len(ns):
                continue
            if all(segment_matches(ns[i], seg) for i, seg in enumerate(prefix)):
                if self.depth is None or len(ns) - len(prefix) <= self.depth:
                    return True
        return False


def _count(value: object) -> bool:
    # JSON true is an int to Python: a "since": true must not read as 1.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_filter(params: dict[str, Any]) -> Filter:
    channels = params.get("channels")
    if not isinstance(channels, list) or not channels:
        raise _bad("channels is required and must be a non-empty array")
    bad = [repr(c) if not isinstance(c, str) else c for c in channels if not supported_channel(c)]
    if bad:
        raise _bad(
            f"channels contains unsupported entries: {', '.join(bad[:5])}. "
            f"Allowed: {', '.join(CHANNELS)}, or custom:<name>"
        )
    namespaces = params.get("namespaces")
    parsed: tuple[Namespace, ...] | None = None
    if namespaces is not None:
        if not isinstance(namespaces, list) or not all(
            isinstance(ns, list) and all(isinstance(s, str) for s in ns) for ns in namespaces
        ):
            raise _bad("namespaces must be an array of namespaces, each an array of strings")
        parsed = tuple(tuple(ns) for ns in namespaces)
    depth = params.get("depth")
    if depth is not None and not _count(depth):
        raise _bad(f"depth must be a non-negative integer, not {shown(depth)}")
    return Filter(frozenset(channels), parsed, depth)


def parse_since(params: dict[str, Any]) -> int | None:
    since = params.get("since")
    if since is not None and not _count(since):
        raise _bad(f"since must be a non-negative integer, not {shown(since)}")
    return since


# Commands


@dataclass(frozen=True)
class RunStart:
    assistant_id: str
    input: Any = None
    config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    multitask_strategy: str | None = None


@dataclass(frozen=True)
class InterruptResponse:
    interrupt_id: str
    namespace: Namespace
    response: Any


@dataclass(frozen=True)
class InputRespond:
    responses: tuple[InterruptResponse, ...]
    update: Any = None
    goto: Any = None
    config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Subscribe:
    filter: Filter
    since: int | None = None
    # subscription.reconnect keeps the client's id
    subscription_id: str | None = None


@dataclass(frozen=True)
class Unsubscribe:
    subscription_id: str


@dataclass(frozen=True)
class GetTree:
    run_id: str | None = None


@dataclass(frozen=True)
class CancelRun:
    run_id: str | None = None
    action: Literal["interrupt", "rollback"] = "interrupt"


CommandBody = RunStart | InputRespond | Subscribe | Unsubscribe | GetTree | CancelRun


@dataclass(frozen=True)
class Command:
    id: int
    body: CommandBody


def _object(params: dict[str, Any], name: str) -> dict[str, Any]:
    value = params.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(f"{name} must be an object")
    return value


def _string(params: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise _bad(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise _bad(f"{name} must be a string")
    return value


def _namespace(value: object) -> Namespace:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _bad("namespace must be an array of strings")
    return tuple(value)


def _response(entry: dict[str, Any]) -> InterruptResponse:
    interrupt_id = _string(entry, "interrupt_id", required=True)
    assert interrupt_id is not None
    return InterruptResponse(interrupt_id, _namespace(entry.get("namespace")), entry.get("response"))


# The JSON a command carries into a run, and how many levels its own wrapping adds.
_JSON_PARAMS = {"input": 0, "config": 0, "metadata": 0, "update": 0, "goto": 0, "response": 0, "responses": 2}


def _body(method: str, params: dict[str, Any]) -> CommandBody:
    for name, wrapping in _JSON_PARAMS.items():
        if too_deep(params.get(name), MAX_NESTING + wrapping) is not None:
            raise _bad(f"{name} is nested more than {MAX_NESTING} levels deep")
    if method == "run.start":
        tracer = params.get("langsmith_tracer")
        if tracer is not None and not isinstance(tracer, dict):
            raise _bad("langsmith_tracer must be an object")
        assistant_id = _string(params, "assistant_id", required=True)
        assert assistant_id is not None
        strategy = params.get("multitaskStrategy", params.get("multitask_strategy"))
        return RunStart(
            assistant_id,
            params.get("input"),
            _object(params, "config"),
            _object(params, "metadata"),
            strategy if isinstance(strategy, str) else None,
        )
    if method == "input.respond":
        many = params.get("responses")
        if many is not None:
            if not isinstance(many, list) or not many or not all(isinstance(e, dict) for e in many):
                raise _bad("responses must be a non-empty array of {interrupt_id, namespace, response}")
            responses = tuple(_response(e) for e in many)
        else:
            responses = (_response(params),)
        return InputRespond(
            responses, params.get("update"), params.get("goto"), _object(params, "config"), _object(params, "metadata")
        )
    if method in ("subscription.subscribe", "subscription.reconnect"):
        since = parse_since(params)
        if method == "subscription.reconnect" and since is None:
            raise _bad("subscription.reconnect requires a non-negative integer since")
        return Subscribe(parse_filter(params), since, _string(params, "subscription_id"))
    if method == "subscription.unsubscribe":
        subscription_id = _string(params, "subscription_id", required=True)
        assert subscription_id is not None
        return Unsubscribe(subscription_id)
    if method == "agent.getTree":
        return GetTree(_string(params, "run_id"))
    if method == "run.cancel":
        action = params.get("action", "interrupt")
        if action not in ("interrupt", "rollback"):
            raise _bad(f"action must be 'interrupt' or 'rollback', not {shown(action)}")
        return CancelRun(_string(params, "run_id"), action)
    raise ProtocolError("unknown_command", f"Unknown protocol command: {method}")


def command_id(payload: object) -> int | None:
    """The command's id, which a reply echoes; None when it is not an integer of at least 0 (the
    reply's id is then null, as for an envelope that cannot be read)."""
    value = payload.get("id") if isinstance(payload, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_command(payload: object) -> Command:
    """A command `{"id": int, "method": str, "params": {...}}`; ProtocolError names what is wrong."""
    cmd_id = command_id(payload)
    if cmd_id is None or not isinstance(payload, dict) or not isinstance(payload.get("method"), str):
        raise _bad("Protocol commands must include an integer id and string method.")
    params = payload.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise _bad("params must be an object")
    return Command(cmd_id, _body(payload["method"], params))


def session_only(thread_id: str, body: CommandBody) -> ProtocolError | None:
    """Subscriptions live on a stream or a socket: a lone HTTP command cannot hold one."""
    if isinstance(body, Subscribe | Unsubscribe):
        return ProtocolError(
            "not_supported",
            f"subscriptions live on a stream: POST /threads/{thread_id}/stream/events, or the WebSocket on that path",
        )
    return None


# Replies


def success(cmd_id: int, result: dict[str, Any], applied_through_seq: int = 0) -> dict[str, Any]:
    return {"type": "success", "id": cmd_id, "result": result, "meta": {"applied_through_seq": applied_through_seq}}


def failure(cmd_id: int | None, code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "id": cmd_id, "error": code, "message": message}


# Events


def encode_event(
    seq: int, event_id: str, method: str, ns: Sequence[str], timestamp: int, data: bytes, node: str | None = None
) -> bytes:
    """The event envelope; `data` is the event's data as JSON, passed through as it was encoded."""
    params: dict[str, Any] = {"namespace": list(ns), "timestamp": timestamp, "data": orjson.Fragment(data)}
    if node:
        params["node"] = node
    envelope = {"type": "event", "event_id": event_id, "seq": seq, "method": method, "params": params}
    return orjson.dumps(envelope)


@dataclass(frozen=True)
class Frame:
    """One protocol event of a subscription, its data encoded once; each transport encodes
    the envelope its own way (JSON, or the gRPC session's typed message)."""

    seq: int
    method: str
    ns: Namespace
    timestamp: int
    data: bytes
    node: str | None = None
    subscription_id: str = ""

    @property
    def event_id(self) -> str:
        return str(self.seq)

    def envelope(self) -> bytes:
        return encode_event(self.seq, self.event_id, self.method, self.ns, self.timestamp, self.data, self.node)


@dataclass(frozen=True)
class SessionFailed:
    """A session's event stream failed (a replay past retention, a reader detached for
    holding a run back): the transport says so with an unsolicited error and ends."""

    code: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return failure(None, self.code, self.message)


class RecentIds:
    """The seqs of the events a connection sent lately, so that an event two of its
    subscriptions receive goes out once (the SDKs drop repeats by event id anyway)."""

    def __init__(self, size: int = 4096) -> None:
        self._order: deque[int] = deque()
        self._ids: set[int] = set()
        self._size = size

    def first(self, seq: int) -> bool:
        if seq in self._ids:
            return False
        if len(self._order) == self._size:
            self._ids.discard(self._order.popleft())
        self._order.append(seq)
        self._ids.add(seq)
        return True
