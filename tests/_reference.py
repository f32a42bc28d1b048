"""What LangGraph itself streams for a graph of the test config, run in-process with the
same config the gateway builds, for comparison with what the gateway sent."""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

import langgraph.version
from langgraph.checkpoint.memory import InMemorySaver

from gateway.config.file import Config, load_config
from gateway.shared.serde import dumps, loads
from tests._server import TEST_CONFIG


@cache
def config() -> Config:
    return load_config(TEST_CONFIG)


async def astream(
    graph_id: str, graph_input: Any, modes: list[str], *, subgraphs: bool = False, stateless: bool = False
) -> list[tuple[tuple[str, ...], str, Any]]:
    spec = config().graphs[graph_id]
    graph = spec.graph.copy(update={"checkpointer": None if stateless else InMemorySaver()})
    run_id, thread_id = str(uuid.uuid4()), str(uuid.uuid4())
    run_config = {
        "configurable": {
            "run_id": run_id,
            "thread_id": thread_id,
            "graph_id": graph_id,
            "assistant_id": spec.assistant_id,
        },
        "metadata": {
            "graph_id": graph_id,
            "assistant_id": spec.assistant_id,
            "run_attempt": 1,
            "langgraph_version": langgraph.version.__version__,
        },
        "recursion_limit": 25,
        "run_id": run_id,
    }
    out = []
    async for item in graph.astream(graph_input, run_config, stream_mode=modes, subgraphs=subgraphs):
        ns, mode, chunk = item if subgraphs else ((), *item)
        out.append((tuple(ns), mode, loads(dumps(chunk))))
    return out


# (graph, input, stream modes): what both edges' tests stream and compare with astream.
STREAM_CASES = [
    ("agent", {"topic": "ice cream"}, ["values"]),
    ("agent", {"topic": "ice cream"}, ["updates"]),
    ("agent", {"topic": "ice cream"}, ["debug"]),
    ("agent", {"topic": "ice cream"}, ["tasks"]),
    ("agent", {"topic": "ice cream"}, ["checkpoints"]),
    ("chat", {"topic": "ice cream"}, ["messages-tuple"]),
    ("custom", {"query": "example"}, ["custom"]),
    ("custom", {"query": "example"}, ["updates", "custom"]),
    (
        "chat",
        {"topic": "ice cream"},
        ["values", "updates", "messages-tuple", "custom", "debug", "tasks", "checkpoints"],
    ),
]

Parts = list[tuple[tuple[str, ...], str, Any]]


def without_task_checkpoints(parts: Parts) -> Parts:
    """Debug checkpoints without the pointers the API adds (`checkpoint`, `parent_checkpoint`,
    and each task's `state` config as `checkpoint`, as the Agent Server does), so that they
    compare with LangGraph's own."""
    out = []
    for ns, mode, data in parts:
        if mode == "debug" and data.get("type") == "checkpoint":
            payload = {k: v for k, v in data["payload"].items() if k not in ("checkpoint", "parent_checkpoint")}
            payload["tasks"] = [
                {k: v for k, v in t.items() if k not in ("state", "checkpoint")} for t in payload["tasks"]
            ]
            data = {**data, "payload": payload}
        out.append((ns, mode, data))
    return out
