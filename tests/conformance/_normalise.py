"""What of a streamed event is compared. Both servers run the same graphs on the same LangGraph,
so what the graph produced must match exactly; what names the server, the request or the moment
(ids, timestamps, versions, tracing tags) legitimately differs and is taken out first."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests._normalise import Normaliser

# Metadata keys that each server fills in its own way, dropped at any depth.
VOLATILE = frozenset(
    {
        # the server and its versions
        "langgraph_version", "langgraph_api_version", "langgraph_plan", "langgraph_host",
        "langgraph_api_url", "lc_versions",
        # the request and who made it
        "__request_start_time_ms__", "langgraph_request_id", "__after_seconds__",
        "langgraph_auth_user", "langgraph_auth_user_id", "langgraph_auth_permissions",
        "created_by", "user_id",
        # when, and how many times
        "run_attempt", "timestamp",
        # LangSmith's tags on chat model calls, which only a server that traces adds
        "ls_integration", "ls_provider", "ls_model_type", "ls_model_name",
    }
)  # fmt: skip


def without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [without_volatile(v) for v in value]
    return value


def _pick(value: Any, keys: tuple[str, ...]) -> Any:
    if not isinstance(value, dict):
        return value
    return {k: value[k] for k in keys if k in value}


def _debug(data: Any) -> Any:
    # Checkpoint configs carry each server's own `configurable` keys (and the API adds checkpoint
    # pointers to tasks): the graph's part of a debug event is its type and these payload keys.
    if not isinstance(data, dict):
        return data
    return {"type": data.get("type"), "payload": _pick(data.get("payload", {}), _DEBUG_PAYLOAD)}


_DEBUG_PAYLOAD = ("name", "values", "next", "result", "error", "input")


def _events(data: Any) -> Any:
    # astream_events entries carry run ids, tags and metadata of the server's own runnables.
    data = _pick(data, ("event", "name", "data"))
    if isinstance(data, dict) and "data" in data:
        data["data"] = _pick(data["data"], ("input", "output", "chunk"))
    return data


def _messages(data: Any) -> Any:
    # A (message chunk, metadata) pair: the chunk's text and kind, and which node and step sent
    # it. The legacy `messages/*` events carry lists of whole messages and are left whole.
    if not (isinstance(data, list) and len(data) == 2):
        return data
    chunk, metadata = data
    return [_pick(chunk, ("content", "type", "tool_calls")), _pick(metadata, ("langgraph_node", "langgraph_step"))]


_NO_INPUT = re.compile(r"Received no input for [^)]*")


def _error(data: Any) -> Any:
    # A run that got no input: the gateway's message says so first, LangGraph's words (the
    # Agent Server's whole message) after.
    if not (isinstance(data, dict) and data.get("error") == "EmptyInputError"):
        return data
    found = _NO_INPUT.search(str(data.get("message", "")))
    return {**data, "message": found[0]} if found else data


# By stream mode: the event name up to `|` (after it comes the subgraph namespace).
_PROJECTIONS: dict[str, Callable[[Any], Any]] = {
    "debug": _debug,
    "events": _events,
    "messages": _messages,
    "error": _error,
}


def event(normaliser: Normaliser, name: str, data: Any) -> tuple[str, Any]:
    """An event's name and data as compared, ids numbered by `normaliser` in order of sight."""
    project = _PROJECTIONS.get(name.partition("|")[0], lambda d: d)
    return normaliser.text(name), normaliser(without_volatile(project(data)))
