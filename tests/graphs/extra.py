"""Graphs for the edges of the contract: failures, slow runs, bursts, interrupts in subgraphs."""

from __future__ import annotations

import asyncio
import operator
from dataclasses import dataclass
from typing import Annotated, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.config import get_stream_writer
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt


class State(TypedDict, total=False):
    topic: str
    n: int
    ticks: int
    delay: float
    pad: int


def failing_node(state: State) -> dict:
    raise ValueError("the node failed on purpose")


failing = StateGraph(State).add_node(failing_node).add_edge(START, "failing_node").compile()


class Secret(Exception):
    pass


def secret_node(state: State) -> dict:
    raise Secret("database password is hunter2")


secret = StateGraph(State).add_node(secret_node).add_edge(START, "secret_node").compile()


async def tick(state: State) -> dict:
    # Writes a custom event every `delay` seconds, `n` times (default: 200 x 50 ms).
    writer = get_stream_writer()
    n, delay = state.get("n", 200), state.get("delay", 0.05)
    for i in range(n):
        writer({"tick": i})
        await asyncio.sleep(delay)
    return {"ticks": n}


slow = StateGraph(State).add_node(tick).add_edge(START, "tick").compile()


def burst_node(state: State) -> dict:
    writer = get_stream_writer()
    pad = "x" * state.get("pad", 0)
    for i in range(state.get("n", 1000)):
        writer({"i": i, "pad": pad} if pad else {"i": i})
    return {"ticks": state.get("n", 1000)}


burst = StateGraph(State).add_node(burst_node).add_edge(START, "burst_node").compile()


async def paced_node(state: State) -> dict:
    # As fast as the event loop allows, but giving the run's consumer a turn per event,
    # as a node that awaits an LLM or a tool between writes does.
    writer = get_stream_writer()
    pad = "x" * state.get("pad", 0)
    for i in range(state.get("n", 1000)):
        writer({"i": i, "pad": pad})
        await asyncio.sleep(0)
    return {"ticks": state.get("n", 1000)}


paced = StateGraph(State).add_node(paced_node).add_edge(START, "paced_node").compile()


class ChatState(TypedDict, total=False):
    topic: str
    joke: str


def inner_model(state: ChatState) -> dict:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="a joke from inside the subgraph")]))
    return {"joke": model.invoke("tell a joke").content}


def review(state: ChatState) -> dict:
    verdict = interrupt({"joke": state["joke"]})
    return {"joke": f"{state['joke']} ({verdict})"}


_inner = StateGraph(ChatState).add_node(inner_model).add_node(review)
_inner.add_edge(START, "inner_model").add_edge("inner_model", "review")
nested = StateGraph(ChatState).add_node("writer", _inner.compile()).add_edge(START, "writer").compile()


class Count(TypedDict, total=False):
    n: int


def _increment(state: Count) -> Count:
    return {"n": state.get("n", 0) + 1}


def _chain(length: int) -> StateGraph[Count]:
    builder = StateGraph(Count)
    names = [f"step_{i:02d}" for i in range(length)]
    for name in names:
        builder.add_node(name, _increment)
    builder.add_edge(START, names[0])
    for a, b in zip(names, names[1:], strict=False):
        builder.add_edge(a, b)
    return builder


# 50 supersteps: more than the 25 steps a run once defaulted to.
chain = _chain(50).compile()


async def _slow_increment(state: Count) -> Count:
    await asyncio.sleep(0.1)
    return {"n": state.get("n", 0) + 1}


def _slow_chain(length: int) -> StateGraph[Count]:
    builder = StateGraph(Count)
    names = [f"step_{i:02d}" for i in range(length)]
    for name in names:
        builder.add_node(name, _slow_increment)
    builder.add_edge(START, names[0])
    for a, b in zip(names, names[1:], strict=False):
        builder.add_edge(a, b)
    return builder


# 20 steps of 0.1 s: a run long enough to lose its process halfway, checkpointed at each step.
chain_slow = _slow_chain(20).compile()


@dataclass
class Settings:
    greeting: str = "hello"
    punctuation: str = "!"


@dataclass
class Required:
    user: str


class Said(TypedDict, total=False):
    said: str


def greet(state: Said, runtime: Runtime[Settings]) -> Said:
    return {"said": f"{runtime.context.greeting}{runtime.context.punctuation}"}


def greet_user(state: Said, runtime: Runtime[Required]) -> Said:
    return {"said": f"hello {runtime.context.user}"}


# A context schema whose fields all have defaults, and one with a required field.
contextual = StateGraph(Said, context_schema=Settings).add_node(greet).add_edge(START, "greet").compile()
strict_context = StateGraph(Said, context_schema=Required).add_node(greet_user).add_edge(START, "greet_user").compile()


class Votes(TypedDict, total=False):
    votes: Annotated[list[str], operator.add]


def ask_left(state: Votes) -> Votes:
    return {"votes": [f"left: {interrupt('left?')}"]}


def ask_right(state: Votes) -> Votes:
    return {"votes": [f"right: {interrupt('right?')}"]}


# Two nodes of one step interrupt at once: the run ends with two interrupts.
two_interrupts = (
    StateGraph(Votes)
    .add_node(ask_left)
    .add_node(ask_right)
    .add_edge(START, "ask_left")
    .add_edge(START, "ask_right")
    .compile()
)
