"""A run's state at its end, read from what the run wrote (gateway.core.run_checkpoints),
is the state a read from storage gives, on each backend: for plain steps, reducers and fan-out,
static and dynamic interrupts, a resume, an error, a subgraph, and each durability; and it
reads no checkpoint from storage."""

from __future__ import annotations

import operator
from typing import Annotated, Any

import pytest
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.types import Command, Send, StateSnapshot, interrupt
from typing_extensions import TypedDict

from gateway.core.run_checkpoints import LastCheckpoint, RunCheckpoints
from gateway.shared.util import uuid7
from gateway.storage import Storage


class State(TypedDict, total=False):
    n: int
    log: Annotated[list[str], operator.add]
    items: list[str]


def _step(name: str) -> Any:
    async def node(state: State) -> State:
        return {"n": state.get("n", 0) + 1, "log": [name]}

    return node


async def _ask(state: State) -> State:
    answer = interrupt({"question": "name?", "n": state.get("n", 0)})
    return {"log": [f"answer:{answer}"]}


async def _fail(state: State) -> State:
    raise ValueError("boom")


async def _work(item: dict[str, str]) -> State:
    return {"log": [item["item"]]}


def _fan_out(state: State) -> list[Send]:
    return [Send("work", {"item": item}) for item in state.get("items", [])]


def _a_then(name: str, node: Any, **compile: Any) -> Pregel:
    """Node `a`, then `name`."""
    return (
        StateGraph(State)
        .add_node("a", _step("a"))
        .add_node(name, node)
        .add_edge("__start__", "a")
        .add_edge("a", name)
        .compile(**compile)
    )


def _fan() -> Pregel:
    return (
        StateGraph(State)
        .add_node("work", _work)
        .add_node("b", _step("b"))
        .add_conditional_edges("__start__", _fan_out, ["work"])
        .add_edge("work", "b")
        .compile()
    )


GRAPHS = {
    "chain": (lambda: _a_then("b", _step("b")), {"n": 1}),
    "static interrupt": (lambda: _a_then("b", _step("b"), interrupt_before=["b"]), {"n": 1}),
    "dynamic interrupt": (lambda: _a_then("ask", _ask), {"n": 1}),
    "error": (lambda: _a_then("fail", _fail), {"n": 1}),
    "fan-out": (_fan, {"items": ["x", "y", "z"]}),
    "subgraph": (lambda: _a_then("inner", _a_then("ask", _ask)), {"n": 1}),
}


def _tasks(state: StateSnapshot) -> list[tuple[Any, ...]]:
    return [
        (t.id, t.name, t.path, repr(t.error), [(i.value, i.id) for i in t.interrupts], t.state, t.result)
        for t in state.tasks
    ]


def _same(memory: StateSnapshot, stored: StateSnapshot) -> None:
    assert memory.values == stored.values
    assert memory.next == stored.next
    assert _tasks(memory) == _tasks(stored)
    assert [(i.value, i.id) for i in memory.interrupts] == [(i.value, i.id) for i in stored.interrupts]
    assert memory.created_at == stored.created_at
    assert memory.config == stored.config
    assert memory.parent_config == stored.parent_config
    assert (memory.metadata or {}).get("step") == (stored.metadata or {}).get("step")


async def _run(storage: Storage, graph: Pregel, thread_id: str, graph_input: Any, durability: str) -> RunCheckpoints:
    run = RunCheckpoints(storage.checkpointer, thread_id)
    config: Any = {"configurable": {"thread_id": thread_id}}
    try:
        async for _ in graph.copy(update={"checkpointer": run}).astream(graph_input, config, durability=durability):
            pass
    except ValueError:
        pass
    return run


async def _compare(storage: Storage, graph: Pregel, thread_id: str, run: RunCheckpoints) -> StateSnapshot:
    config: Any = {"configurable": {"thread_id": thread_id}}
    last = run.last()
    assert last is not None
    reads: list[Any] = []
    saver: Any = storage.checkpointer
    real_read = saver.aget_tuple

    async def counted(cfg: Any) -> Any:
        reads.append(cfg)
        return await real_read(cfg)

    saver.aget_tuple = counted
    try:
        memory = await graph.copy(update={"checkpointer": LastCheckpoint(saver, last)}).aget_state(config)
    finally:
        del saver.aget_tuple
    assert reads == []
    stored = await graph.copy(update={"checkpointer": storage.checkpointer}).aget_state(config)
    _same(memory, stored)
    return stored


@pytest.mark.parametrize("durability", ["async", "sync", "exit"])
@pytest.mark.parametrize("name", list(GRAPHS))
async def test_the_state_a_run_leaves_is_the_stored_one(storage: Storage, name: str, durability: str) -> None:
    make, graph_input = GRAPHS[name]
    graph = make()
    thread_id = uuid7()
    run = await _run(storage, graph, thread_id, graph_input, durability)
    state = await _compare(storage, graph, thread_id, run)
    if name in ("static interrupt", "dynamic interrupt", "subgraph"):
        assert state.next
        # The next run on the thread resumes it: its state too.
        resume = None if name == "static interrupt" else Command(resume="ada")
        run = await _run(storage, graph, thread_id, resume, durability)
        state = await _compare(storage, graph, thread_id, run)
        assert not state.next
    if name == "error":
        assert state.tasks and state.tasks[0].error is not None


async def test_a_run_whose_checkpoints_were_deleted_has_no_copy(storage: Storage) -> None:
    thread_id = uuid7()
    run = await _run(storage, _a_then("b", _step("b")), thread_id, {"n": 1}, "async")
    assert run.last() is not None
    run.forget()
    assert run.last() is None
