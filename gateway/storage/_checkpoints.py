"""What both backends' checkpointers add to a checkpoint's metadata, as the Agent Server's does:
the run's `configurable` and config metadata (so a checkpoint names its thread, its graph, and in
a subgraph its namespace and the checkpoint map), without what belongs to one request only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

# Addressed by the checkpoint's own columns, or its run's (the metadata names it from LangGraph).
_ADDRESSING = frozenset({"checkpoint_ns", "checkpoint_id", "run_id", "thread_id"})
# Per request, not per checkpoint.
_TRANSIENT = frozenset(
    {"langgraph_request_id", "langgraph_auth_user", "langgraph_auth_user_id", "langgraph_auth_permissions"}
)


def _storable(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


def checkpoint_metadata(config: Mapping[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
    configurable: Mapping[str, Any] = config.get("configurable") or {}
    out = {
        k: v
        for k, v in configurable.items()
        if not k.startswith("__") and k not in _ADDRESSING and k not in _TRANSIENT and _storable(v)
    }
    out.update((k, v) for k, v in (config.get("metadata") or {}).items() if k not in _TRANSIENT and _storable(v))
    out.update((k, v) for k, v in metadata.items() if k not in _TRANSIENT)
    thread_id = configurable.get("thread_id")
    if thread_id is not None and "thread_id" not in out:
        out["thread_id"] = str(thread_id)
    return out
