"""A run's events on the wire: the names the HTTP API (and the core) give them, and where each
goes in a RunEvent. The gRPC edge, the HTTP edge and the bridge all name events here."""

from __future__ import annotations

from collections.abc import Sequence

from langgraph.gateway.v1 import runs_pb2

# Event name -> (RunEvent's oneof case, its MessagesEvent kind; 0 for the other cases). The
# events named here carry their payload as JSON text; metadata, error and end are typed.
RUN_EVENT_CASES: dict[str, tuple[str, int]] = {
    "values": ("values", 0),
    "updates": ("updates", 0),
    "messages": ("messages", runs_pb2.MESSAGES_EVENT_KIND_TUPLE),
    "messages/metadata": ("messages", runs_pb2.MESSAGES_EVENT_KIND_METADATA),
    "messages/partial": ("messages", runs_pb2.MESSAGES_EVENT_KIND_PARTIAL),
    "messages/complete": ("messages", runs_pb2.MESSAGES_EVENT_KIND_COMPLETE),
    "debug": ("debug", 0),
    "custom": ("custom", 0),
    "events": ("events", 0),
    "tasks": ("tasks", 0),
    "checkpoints": ("checkpoints", 0),
    "tools": ("tools", 0),
}
RUN_EVENT_NAMES = {case: name for name, case in RUN_EVENT_CASES.items()}
PAYLOAD_CASES = frozenset(case for case, _ in RUN_EVENT_CASES.values())


def payload_event_name(msg: runs_pb2.RunEvent, case: str) -> str:
    """The name of a RunEvent whose oneof `case` is one of PAYLOAD_CASES; a messages event of a
    kind this side does not know is `messages`."""
    kind = msg.messages.kind if case == "messages" else 0
    return RUN_EVENT_NAMES.get((case, kind), case)


def event_name(name: str, ns: Sequence[str]) -> str:
    """`mode|<node>:<task id>|...` for events from inside subgraphs, as SSE and the thread
    stream's messages name them."""
    if not ns:
        return name
    joined = "|".join(ns)
    if "\n" in joined or "\r" in joined:
        # Node names come from user code; a line break would end an SSE `event:` field.
        joined = joined.replace("\r", "").replace("\n", "")
    return f"{name}|{joined}"
