"""Graphs of the store and graph-factory tests: memories kept in the store across runs and
threads, and a graph factory of each form the LangGraph Agent Server accepts."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypedDict

from factory_events import EVENTS
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_store
from langgraph.graph import START, StateGraph
from langgraph.pregel import Pregel
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore
from langgraph_sdk.runtime import ServerRuntime


class Memory(TypedDict, total=False):
    user: str
    remember: str
    memories: list[str]
    recalled: list[str]


async def remember(state: Memory, *, store: BaseStore) -> Memory:
    """Keeps `remember` under the user's namespace; answers with all the user's memories."""
    namespace = ("memories", state["user"])
    if text := state.get("remember"):
        await store.aput(namespace, text, {"text": text})
    found = await store.asearch(namespace, limit=100)
    return {"memories": sorted(item.value["text"] for item in found)}


def recall(state: Memory, runtime: Runtime) -> Memory:
    """A sync node (run in a worker thread): the store through get_store() and Runtime.store."""
    store = get_store()
    assert store is runtime.store
    assert runtime.store is not None
    found = runtime.store.search(("memories", state["user"]), limit=100)
    return {"recalled": sorted(item.value["text"] for item in found)}


memory = (
    StateGraph(Memory)
    .add_node(remember)
    .add_node(recall)
    .add_edge(START, "remember")
    .add_edge("remember", "recall")
    .compile()
)


# Graph factories


class Built(TypedDict, total=False):
    topic: str
    built: dict[str, Any]


def _reporting(name: str, built: dict[str, Any]) -> Pregel:
    """A one-node graph that answers with what its factory saw when it built it."""

    def report(state: Built) -> Built:
        return {"built": built}

    return StateGraph(Built).add_node("report", report).add_edge(START, "report").compile(name=name)


def plain_factory() -> Pregel:
    return _reporting("plain", {"by": "plain"})


def config_factory(config: RunnableConfig) -> StateGraph[Built]:
    """Returns a StateGraph, which the server compiles; reads the run's (or assistant's) config."""
    flavor = config.get("configurable", {}).get("flavor")

    def report(state: Built) -> Built:
        return {"built": {"by": "config", "flavor": flavor}}

    return StateGraph(Built).add_node("report", report).add_edge(START, "report")


def _runtime_view(runtime: ServerRuntime) -> dict[str, Any]:
    execution = runtime.execution_runtime
    return {
        "access_context": runtime.access_context,
        "user": runtime.user.identity if runtime.user is not None else None,
        "has_store": runtime.store is not None,
        "context": execution.context if execution is not None else "n/a",
    }


def runtime_factory(config: RunnableConfig, runtime: ServerRuntime) -> Pregel:
    return _reporting("runtime", {"by": "runtime", **_runtime_view(runtime)})


async def async_factory(runtime: ServerRuntime) -> Pregel:
    return _reporting("async", {"by": "async", **_runtime_view(runtime)})


@contextlib.contextmanager
def cm_factory(config: RunnableConfig) -> Iterator[Pregel]:
    run_id = str(config.get("configurable", {}).get("run_id"))
    EVENTS.append(["enter", run_id])
    try:
        yield _reporting("cm", {"by": "cm"})
    finally:
        EVENTS.append(["exit", run_id])


def broken_factory(config: RunnableConfig) -> Any:
    """Raises when the config asks it to; otherwise gives something that is not a graph."""
    if config.get("configurable", {}).get("fail"):
        raise RuntimeError("the factory failed on purpose")
    return {"not": "a graph"}


class Log(TypedDict, total=False):
    run_id: str
    log: list[list[str]]


def read_log(state: Log) -> Log:
    return {"log": [entry for entry in EVENTS if entry[1] == state["run_id"]]}


factory_log = StateGraph(Log).add_node(read_log).add_edge(START, "read_log").compile()


@contextlib.asynccontextmanager
async def acm_factory(config: RunnableConfig, runtime: ServerRuntime) -> AsyncIterator[Pregel]:
    """Records its entry and exit of each run in the store, where a client can read them."""
    run_id = config.get("configurable", {}).get("run_id")
    execution = runtime.execution_runtime is not None
    if execution:
        await runtime.store.aput(("factory", "acm"), str(run_id), {"entered": True, "exited": False})
    try:
        yield _reporting("acm", {"by": "acm", **_runtime_view(runtime)})
    finally:
        if execution:
            await runtime.store.aput(("factory", "acm"), str(run_id), {"entered": True, "exited": True})
