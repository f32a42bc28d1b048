"""The graphs every side of the benchmark runs: our gateway and the reference server load this
file through bench/langgraph.json, and the in-process floor imports it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.config import get_stream_writer
from langgraph.graph import StateGraph

CHAIN_LENGTH = 50
DEFAULT_BURST = 1000


class Counter(TypedDict):
    n: int


async def _increment(state: Counter) -> Counter:
    return {"n": state["n"] + 1}


def _chain(length: int) -> StateGraph[Counter]:
    builder = StateGraph(Counter)
    names = [f"step_{i:02d}" for i in range(length)]
    for name in names:
        builder.add_node(name, _increment)
    builder.add_edge("__start__", names[0])
    for a, b in zip(names, names[1:], strict=False):
        builder.add_edge(a, b)
    return builder


# A small run: two nodes, two `updates` events.
two_node = _chain(2).compile(name="two_node")

# 50 supersteps, one `updates` event each; needs recursion_limit above 50.
chain = _chain(CHAIN_LENGTH).compile(name="chain")


class Burst(TypedDict, total=False):
    count: int


async def _write(state: Burst) -> Burst:
    write = get_stream_writer()
    for i in range(state.get("count") or DEFAULT_BURST):
        write({"i": i})
    return {}


# One node writing `count` custom events (default 1,000) as fast as it can.
burst = StateGraph(Burst).add_node("write", _write).add_edge("__start__", "write").compile(name="burst")


class Payload(TypedDict, total=False):
    size: int
    blob: str


async def _fill(state: Payload) -> Payload:
    return {"blob": "x" * state.get("size", 1024)}


# A state of `size` bytes: two `values` events, the second carrying the whole blob.
payload = StateGraph(Payload).add_node("fill", _fill).add_edge("__start__", "fill").compile(name="payload")


class Slow(TypedDict, total=False):
    seconds: float


async def _sleep(state: Slow) -> Slow:
    await asyncio.sleep(state.get("seconds", 60.0))
    return {}


# Holds its stream open, idle, for `seconds`.
slow = StateGraph(Slow).add_node("sleep", _sleep).add_edge("__start__", "sleep").compile(name="slow")


class Ticker(TypedDict, total=False):
    count: int
    interval: float


async def _tick(state: Ticker) -> Ticker:
    write = get_stream_writer()
    loop = asyncio.get_running_loop()
    interval = state.get("interval", 0.05)
    start = loop.time()
    for seq in range(state.get("count", 1)):
        # On a fixed schedule from the start, so a late tick does not push back every later one.
        delay = start + seq * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        write({"seq": seq, "t": time.time()})
    return {}


# `count` custom events {"seq", "t"}, one every `interval` seconds, `t` the wall-clock time it
# was written: the load test checks every stream's seqs and times each event's delivery.
ticker = StateGraph(Ticker).add_node("tick", _tick).add_edge("__start__", "tick").compile(name="ticker")


class Tokens(TypedDict, total=False):
    count: int
    answer: str


class _TokenModel(BaseChatModel):
    """A chat model that streams `count` one-word tokens, as fast as it can."""

    count: int = 1

    @property
    def _llm_type(self) -> str:
        return "bench-tokens"

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="tok " * self.count))])

    async def _astream(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        for i in range(self.count):
            last = i == self.count - 1
            chunk = ChatGenerationChunk(message=AIMessageChunk(content="tok ", chunk_position="last" if last else None))
            if run_manager:
                await run_manager.on_llm_new_token("tok ", chunk=chunk)
            yield chunk


async def _answer(state: Tokens) -> Tokens:
    reply = await _TokenModel(count=state.get("count", 1000)).ainvoke("stream")
    return {"answer": str(reply.content)}


# One model call streaming `count` tokens (default 1,000): what an LLM answer looks like on
# every stream (runs.stream's messages-tuple, the thread protocol's messages channel).
tokens = StateGraph(Tokens).add_node("answer", _answer).add_edge("__start__", "answer").compile(name="tokens")
