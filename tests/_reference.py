"""What LangGraph itself streams for a graph of the test config, run in-process with the
same config the gateway builds, for comparison with what the gateway sent."""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

import langgraph.version
from langgraph.checkpoint.memory import InMemorySaver

from gateway.config import Config, load_config
from gateway.serde import dumps, loads
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
