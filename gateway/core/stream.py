"""Executes a graph and turns what it streams into the API's events, the way the LangGraph
Agent Server names and shapes them."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Any, cast

from langchain_core.messages import BaseMessageChunk, convert_to_messages, message_chunk_to_message
from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel
from langgraph.types import Command, Send

from gateway.shared.serde import dumps

# (event name, namespace, JSON payload)
Part = tuple[str, tuple[str, ...], bytes]


def to_command(cmd: dict[str, Any]) -> Command:
    goto = cmd.get("goto")
    if goto is not None and not isinstance(goto, list):
        goto = [goto]
    update = cmd.get("update")
    if isinstance(update, list) and all(
        isinstance(t, (list, tuple)) and len(t) == 2 and isinstance(t[0], str) for t in update
    ):
        update = [tuple(t) for t in update]
    return Command(
        update=update,
        goto=[it if isinstance(it, str) else Send(it["node"], it["input"]) for it in goto] if goto else (),
        resume=cmd.get("resume"),
    )


def _checkpoint_ref(config: dict[str, Any] | None) -> dict[str, Any] | None:
    configurable = (config or {}).get("configurable") or {}
    if not configurable.get("thread_id") or not configurable.get("checkpoint_id"):
        return None
    ref = {"checkpoint_id": configurable["checkpoint_id"], "thread_id": configurable["thread_id"]}
    if "checkpoint_ns" in configurable:
        ref["checkpoint_ns"] = configurable["checkpoint_ns"] or ""
    if "checkpoint_map" in configurable:
        ref["checkpoint_map"] = configurable["checkpoint_map"]
    return ref


def _debug_checkpoint(payload: dict[str, Any] | None) -> dict[str, Any] | None:
    # The Agent Server adds `checkpoint` / `parent_checkpoint` pointers to debug checkpoints,
    # and replaces each task's `state` config with a `checkpoint` pointer.
    if not payload:
        return None
    tasks = []
    for task in payload.get("tasks", ()):
        state = task.get("state")
        if isinstance(state, dict) and state.get("configurable"):
            task = {k: v for k, v in task.items() if k != "state"}
            task["checkpoint"] = state["configurable"]
        tasks.append(task)
    return {
        **payload,
        "checkpoint": _checkpoint_ref(payload.get("config")),
        "parent_checkpoint": _checkpoint_ref(payload.get("parent_config")),
        "tasks": tasks,
    }


class _LegacyMessages:
    """Accumulates token chunks into whole messages for the legacy `messages` mode."""

    def __init__(self) -> None:
        # Chunks of one message add up to the message so far (BaseMessageChunk.__add__).
        self.messages: dict[str | None, Any] = {}

    def parts(self, chunk: tuple[Any, dict[str, Any]]) -> list[tuple[str, bytes]]:
        msg_, meta = chunk
        msg: Any = convert_to_messages([msg_])[0] if isinstance(msg_, dict) else msg_
        out = []
        if msg.id in self.messages:
            self.messages[msg.id] = self.messages[msg.id] + msg
        else:
            self.messages[msg.id] = msg
            out.append(("messages/metadata", dumps({msg.id: {"metadata": meta}})))
        kind = "messages/partial" if isinstance(msg, BaseMessageChunk) else "messages/complete"
        out.append((kind, dumps([message_chunk_to_message(cast(BaseMessageChunk, self.messages[msg.id]))])))
        return out


def graph_modes(stream_mode: Sequence[str]) -> list[str]:
    """The LangGraph stream modes that produce the API's requested modes."""
    modes = set(stream_mode) - {"events", "messages-tuple"}
    if "messages-tuple" in stream_mode:
        modes.add("messages")
    if "events" in stream_mode:
        # As the Agent Server asks for it: it shapes the chain events astream_events reports.
        modes.add("debug")
    return sorted(modes)


async def stream_graph(
    graph: Pregel,
    input: Any,
    config: dict[str, Any],
    *,
    stream_mode: Sequence[str],
    subgraphs: bool,
    run_id: str,
    context: dict[str, Any] | None = None,
    interrupt_before: Any = None,
    interrupt_after: Any = None,
    durability: str | None = None,
) -> AsyncGenerator[Part]:
    """Yields (event name, namespace, JSON payload) for everything the requested modes emit."""
    requested = frozenset(stream_mode)
    tuple_messages = "messages-tuple" in requested
    legacy = _LegacyMessages() if "messages" in requested and not tuple_messages else None
    kwargs: dict[str, Any] = {
        "stream_mode": graph_modes(stream_mode),
        "subgraphs": subgraphs,
        "interrupt_before": interrupt_before,
        "interrupt_after": interrupt_after,
        "output_keys": graph.output_channels,
    }
    if context is not None:
        # Even an empty one: LangGraph builds the context schema's defaults from it.
        kwargs["context"] = context
    if durability:
        kwargs["durability"] = durability
    config = {**config, "run_id": run_id}
    root: tuple[str, ...] = ()

    def translate(ns: tuple[str, ...], mode: str, chunk: Any) -> list[Part]:
        if mode == "messages":
            if legacy is not None:
                return [(name, root, data) for name, data in legacy.parts(chunk)]
        elif mode not in requested:
            return []
        elif mode == "debug" and chunk.get("type") == "checkpoint":
            chunk = {**chunk, "payload": _debug_checkpoint(chunk.get("payload"))}
        return [(mode, ns, dumps(chunk))]

    if "events" in requested:
        events = cast(
            AsyncGenerator[Any], graph.astream_events(input, cast(RunnableConfig, config), version="v2", **kwargs)
        )
        async with aclosing(events):
            async for event in events:
                tags = event.get("tags")
                if tags and "langsmith:hidden" in tags:
                    continue
                if event["event"] == "on_chain_stream" and event["run_id"] == run_id:
                    item = event["data"]["chunk"]
                    ns, mode, chunk = item if subgraphs else (root, *item)
                    for part in translate(tuple(ns), mode, chunk):
                        yield part
                else:
                    yield ("events", root, dumps(event))
        return

    stream = cast(AsyncGenerator[Any], graph.astream(input, cast(RunnableConfig, config), **kwargs))
    async with aclosing(stream):
        if subgraphs:
            async for ns, mode, chunk in stream:
                for part in translate(ns, mode, chunk):
                    yield part
        else:
            async for mode, chunk in stream:
                if mode == "messages" or mode == "debug" or mode not in requested:
                    for part in translate(root, mode, chunk):
                        yield part
                else:
                    yield (mode, root, dumps(chunk))
