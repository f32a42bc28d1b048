"""A run's events, as the run core keeps them, told as the thread protocol's events
(`langchain_protocol`): lifecycle of the run and of each subgraph, values, updates, messages as
content-block deltas, tool calls, custom data, tasks, checkpoints, and interrupts as
`input.requested`.

The translation is a function of the run's events alone, in order: replaying a run gives the
same protocol events every time, which is what lets a client resume by seq on any connection.
Payloads pass through as the core encoded them wherever the protocol shape allows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from langchain_core.messages import AIMessage, AIMessageChunk

from gateway.shared.compat import (
    _accumulate,
    _accumulate_usage,
    _build_message_finish,
    _build_message_start,
    _finalize_block,
    _iter_protocol_blocks,
    _start_skeleton,
    _to_content_delta,
    merge_dicts,
    message_to_events,
)
from gateway.shared.protocol import Namespace
from gateway.shared.records import Event
from gateway.shared.serde import dumps as _dumps

# (method, namespace, data as JSON, node)
Out = tuple[str, Namespace, bytes, str | None]

# The key LangChain's bridge gives a text block that carries no index of its own.
_TEXT_KEY = ("__lc_no_index__", "text", 0)
_INTERRUPT = b'"__interrupt__"'


@dataclass
class _Message:
    """A message being streamed: its blocks by the source's key, with their wire index."""

    node: str | None
    blocks: dict[Any, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    # A plain text block's pieces, joined once when it finishes.
    text: list[str] = field(default_factory=list)
    usage: Any = None
    response_metadata: dict[str, Any] = field(default_factory=dict)
    additional_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Subgraph:
    namespace: Namespace
    graph_name: str
    status: str = "started"


def _simple_text(chunk: dict[str, Any]) -> str | None:
    """The chunk's text when it is nothing but text (what token streams are), else None."""
    content = chunk.get("content")
    if (
        isinstance(content, str)
        and not chunk.get("tool_call_chunks")
        and not chunk.get("additional_kwargs")
        and not chunk.get("response_metadata")
        and not chunk.get("usage_metadata")
    ):
        return content
    return None


def _interrupt_requests(interrupts: object) -> list[tuple[str, Any]]:
    out = []
    for entry in interrupts if isinstance(interrupts, list) else ():
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            out.append((entry["id"], entry.get("value")))
    return out


class RunTranslator:
    """Turns one run's events into protocol events, one call per event, in the run's order."""

    def __init__(self, graph_name: str) -> None:
        self.graph_name = graph_name
        # The root's lifecycle status: "" until the run starts.
        self.status = ""
        self.subgraphs: dict[Namespace, Subgraph] = {}
        self._messages: dict[tuple[Namespace, str], _Message] = {}
        self._finished_messages: set[tuple[Namespace, str]] = set()
        self._interrupts: set[str] = set()
        self._checkpoints: set[tuple[Namespace, str]] = set()
        self._tasks_seen = False
        self._error: str | None = None
        self._out: list[Out] = []

    def feed(self, event: Event) -> list[Out]:
        out: list[Out] = []
        self._out = out
        name, ns, data = event.name, event.ns, event.data
        if name == "metadata":
            self.status = "running"
            self._emit("lifecycle", (), {"event": "running", "graph_name": self.graph_name})
            return out
        if name == "end":
            self._end(orjson.loads(data).get("status", "success"))
            return out
        if name == "error":
            err = orjson.loads(data)
            self._error = str(err.get("message") or err.get("error") or "") if isinstance(err, dict) else str(err)
            return out
        if ns:
            self._announce(ns)
        if name == "values":
            self._values(ns, data)
        elif name == "messages":
            self._message_part(ns, data)
        elif name == "updates":
            self._updates(ns, data)
        elif name == "custom":
            self._custom(ns, data)
        elif name == "tasks":
            self._tasks(ns, data)
        elif name == "checkpoints":
            self._checkpoint(ns, data)
        elif name == "tools":
            self._out.append(("tools", ns, data, None))
        # Other modes (debug, events, the legacy messages/*) have no protocol channel.
        return out

    def _emit(self, method: str, ns: Namespace, data: Any, node: str | None = None) -> None:
        self._out.append((method, ns, _dumps(data), node))

    # Subgraphs

    def _announce(self, ns: Namespace) -> None:
        # A subgraph is announced before its first event, so a client discovers it before it
        # sees anything of it.
        for depth in range(1, len(ns) + 1):
            prefix = ns[:depth]
            if prefix in self.subgraphs:
                continue
            graph_name, _, task_id = prefix[-1].partition(":")
            self.subgraphs[prefix] = Subgraph(prefix, graph_name)
            data: dict[str, Any] = {"event": "started", "namespace": list(prefix), "graph_name": graph_name}
            if task_id:
                data["trigger_call_id"] = task_id
            self._emit("lifecycle", prefix, data)

    def _close(self, ns: Namespace, status: str, error: str | None = None) -> None:
        subgraph = self.subgraphs.get(ns)
        if subgraph is None or subgraph.status != "started":
            return
        # Its own subgraphs end first.
        for inner in [
            s for s in self.subgraphs.values() if len(s.namespace) > len(ns) and s.namespace[: len(ns)] == ns
        ]:
            self._close(inner.namespace, status, error)
        subgraph.status = status
        data: dict[str, Any] = {"event": status, "graph_name": subgraph.graph_name}
        if error is not None:
            data["error"] = error
        self._emit("lifecycle", ns, data)

    # Channels

    def _request_input(self, ns: Namespace, interrupts: object) -> None:
        for interrupt_id, value in _interrupt_requests(interrupts):
            if interrupt_id in self._interrupts:
                continue
            self._interrupts.add(interrupt_id)
            # `payload` is the protocol's key; the SDKs read `value`.
            self._emit("input.requested", ns, {"interrupt_id": interrupt_id, "payload": value, "value": value})

    def _values(self, ns: Namespace, data: bytes) -> None:
        if _INTERRUPT in data:
            state = orjson.loads(data)
            if isinstance(state, dict) and "__interrupt__" in state:
                self._request_input(ns, state.pop("__interrupt__"))
                data = _dumps(state)
        self._out.append(("values", ns, data, None))

    def _updates(self, ns: Namespace, data: bytes) -> None:
        update = orjson.loads(data)
        if not isinstance(update, dict) or len(update) != 1:
            self._out.append(("updates", ns, b'{"values":' + data + b"}", None))
            return
        node, values = next(iter(update.items()))
        if node == "__interrupt__":
            self._request_input(ns, values)
            return
        if isinstance(values, dict):
            # The node's update as the core encoded it: {"<node>":<update>}.
            key = _dumps(node)
            raw = data[len(key) + 2 : -1] if data.startswith(b"{" + key + b":") else _dumps(values)
        else:
            raw = _dumps({"value": values})
        self._out.append(("updates", ns, b'{"node":' + _dumps(node) + b',"values":' + raw + b"}", node))
        # A node's update means its model calls are over, whether or not they said so.
        for key_ in [k for k, m in self._messages.items() if k[0] == ns and m.node == node]:
            self._finish_message(key_)
        if not self._tasks_seen:
            # Without task events, a node's update is what says its subgraph ended.
            for sub in list(self.subgraphs.values()):
                if sub.status == "started" and sub.namespace[:-1] == ns and sub.graph_name == node:
                    self._close(sub.namespace, "completed")
                    break

    def _custom(self, ns: Namespace, data: bytes) -> None:
        # Data written as {"name": ..., "payload": ...} is already the protocol's shape, and
        # reaches `custom:<name>` subscribers (the SDKs' `thread.extensions[name]`).
        if data.startswith(b'{"name":'):
            value = orjson.loads(data)
            if isinstance(value, dict) and isinstance(value.get("name"), str) and set(value) == {"name", "payload"}:
                self._out.append(("custom", ns, data, None))
                return
        self._out.append(("custom", ns, b'{"payload":' + data + b"}", None))

    def _tasks(self, ns: Namespace, data: bytes) -> None:
        self._tasks_seen = True
        self._out.append(("tasks", ns, data, None))
        task = orjson.loads(data)
        if isinstance(task, dict) and "result" in task and isinstance(task.get("id"), str):
            child = (*ns, f"{task.get('name')}:{task['id']}")
            if task.get("interrupts"):
                self._close(child, "interrupted")
            elif task.get("error"):
                self._close(child, "failed", str(task["error"]))
            else:
                self._close(child, "completed")

    def _checkpoint(self, ns: Namespace, data: bytes) -> None:
        snapshot = orjson.loads(data)
        if not isinstance(snapshot, dict):
            return
        checkpoint_id = ((snapshot.get("config") or {}).get("configurable") or {}).get("checkpoint_id")
        if not isinstance(checkpoint_id, str) or (ns, checkpoint_id) in self._checkpoints:
            return
        self._checkpoints.add((ns, checkpoint_id))
        metadata = snapshot.get("metadata") or {}
        checkpoint: dict[str, Any] = {"id": checkpoint_id}
        parent = ((snapshot.get("parent_config") or {}).get("configurable") or {}).get("checkpoint_id")
        if parent:
            checkpoint["parent_id"] = parent
        checkpoint["step"] = metadata.get("step", 0)
        checkpoint["source"] = metadata.get("source", "loop")
        self._emit("checkpoints", ns, checkpoint)

    # Messages

    def _message_part(self, ns: Namespace, data: bytes) -> None:
        part = orjson.loads(data)
        if not isinstance(part, list) or len(part) != 2 or not isinstance(part[0], dict):
            return  # the legacy `messages` mode's shapes have no protocol form
        chunk, metadata = part
        node = metadata.get("langgraph_node") if isinstance(metadata, dict) else None
        message_id = chunk.get("id")
        if not isinstance(message_id, str):
            return
        key = (ns, message_id)
        kind = chunk.get("type")
        if kind == "AIMessageChunk":
            self._chunk(key, chunk, node)
        elif kind == "ai" and key not in self._messages and key not in self._finished_messages:
            # A whole message a node returned without streaming it, told as a stream of one.
            self._finished_messages.add(key)
            for item in message_to_events(AIMessage.model_validate(chunk)):
                self._emit("messages", ns, item, node)
        # Tool, human and system messages are state, not model output: values and updates carry them.

    def _chunk(self, key: tuple[Namespace, str], chunk: dict[str, Any], node: str | None) -> None:
        ns = key[0]
        message = self._messages.get(key)
        text = _simple_text(chunk)
        parsed = None if text is not None else AIMessageChunk.model_validate(chunk)
        if message is None:
            if key in self._finished_messages:
                return
            message = self._messages[key] = _Message(node)
            start = _build_message_start(parsed, None) if parsed is not None else None
            if start is None:
                start = {"event": "message-start", "role": "ai", "id": key[1]}
            self._emit("messages", ns, start, node)
        if parsed is None:
            assert text is not None
            if text:
                self._text(message, ns, text, node)
        else:
            self._blocks(message, ns, parsed, node)
        if chunk.get("chunk_position") == "last":
            self._finish_message(key)

    def _text(self, message: _Message, ns: Namespace, text: str, node: str | None) -> None:
        entry = message.blocks.get(_TEXT_KEY)
        if entry is None:
            index = len(message.blocks)
            message.blocks[_TEXT_KEY] = (index, {"type": "text", "text": ""})
            message.text.append(text)
            self._emit(
                "messages",
                ns,
                {"event": "content-block-start", "index": index, "content": {"type": "text", "text": ""}},
                node,
            )
        else:
            index = entry[0]
            message.text.append(text)
        self._out.append(
            (
                "messages",
                ns,
                b'{"event":"content-block-delta","index":%d,"delta":{"type":"text-delta","text":%b}}'
                % (index, _dumps(text)),
                node,
            )
        )

    def _blocks(self, message: _Message, ns: Namespace, chunk: AIMessageChunk, node: str | None) -> None:
        if chunk.response_metadata:
            message.response_metadata.update(chunk.response_metadata)
        if chunk.additional_kwargs:
            message.additional_kwargs = merge_dicts(message.additional_kwargs, chunk.additional_kwargs)
        for key, block in _iter_protocol_blocks(chunk):
            entry = message.blocks.get(key)
            if entry is None:
                index = len(message.blocks)
                message.blocks[key] = (index, dict(block))
                self._emit(
                    "messages",
                    ns,
                    {"event": "content-block-start", "index": index, "content": _start_skeleton(block)},
                    node,
                )
            else:
                index, state = entry
                if key == _TEXT_KEY and message.text:
                    state["text"] = "".join(message.text)
                    message.text.clear()
                message.blocks[key] = (index, _accumulate(state, block))
            delta = _to_content_delta(block)
            if delta is not None:
                self._emit("messages", ns, {"event": "content-block-delta", "index": index, "delta": delta}, node)
        if chunk.usage_metadata:
            message.usage = _accumulate_usage(message.usage, chunk.usage_metadata)

    def _finish_message(self, key: tuple[Namespace, str], error: str | None = None) -> None:
        message = self._messages.pop(key, None)
        if message is None:
            return
        self._finished_messages.add(key)
        ns, node = key[0], message.node
        if error is not None:
            self._emit("messages", ns, {"event": "error", "message": error}, node)
            return
        for block_key, (index, block) in message.blocks.items():
            if block_key == _TEXT_KEY and message.text:
                block = {**block, "text": block.get("text", "") + "".join(message.text)}
            self._emit(
                "messages",
                ns,
                {"event": "content-block-finish", "index": index, "content": _finalize_block(block)},
                node,
            )
        finish = _build_message_finish(
            usage=message.usage,
            response_metadata=message.response_metadata,
            additional_kwargs=message.additional_kwargs,
        )
        self._emit("messages", ns, finish, node)

    # The end

    def _end(self, status: str) -> None:
        if not self.status:
            return  # cancelled before it started: it never ran
        if status == "success":
            root = "interrupted" if self._interrupts else "completed"
        elif status == "interrupted":
            root = "interrupted"
        else:
            root = "failed"
        error = None
        if root == "failed":
            error = self._error or ("the run timed out" if status == "timeout" else "the run failed")
        for key in list(self._messages):
            self._finish_message(key, error)
        for subgraph in sorted(self.subgraphs.values(), key=lambda s: -len(s.namespace)):
            self._close(subgraph.namespace, root, error)
        self.status = root
        data: dict[str, Any] = {"event": root, "graph_name": self.graph_name}
        if error is not None:
            data["error"] = error
        self._emit("lifecycle", (), data)

    def tree(self) -> dict[str, Any]:
        """The run's graph and subgraphs with their status (`agent.getTree`)."""

        def node(ns: Namespace, graph_name: str, status: str) -> dict[str, Any]:
            out: dict[str, Any] = {"namespace": list(ns), "status": status, "graph_name": graph_name}
            children = [
                s for s in self.subgraphs.values() if s.namespace[:-1] == ns and len(s.namespace) == len(ns) + 1
            ]
            if children:
                out["children"] = [node(c.namespace, c.graph_name, c.status) for c in children]
            return out

        return node((), self.graph_name, self.status or "started")


def translate(graph_name: str, events: Sequence[Event]) -> tuple[RunTranslator, list[Out]]:
    """A whole run at once (tests, agent.getTree)."""
    translator = RunTranslator(graph_name)
    out: list[Out] = []
    for event in events:
        out.extend(translator.feed(event))
    return translator, out
