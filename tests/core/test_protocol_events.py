"""The translation of a run's events into the thread protocol's, as a plain function: the
events LangGraph itself streams for the protocol's graphs go in, protocol events come out."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from langchain_core.language_models._compat_bridge import chunks_to_events
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from langgraph.checkpoint.memory import InMemorySaver

from gateway.config.file import load_config
from gateway.core.protocol_events import RunTranslator, translate
from gateway.core.protocol_stream import PROTOCOL_MODES, SEQ_BITS, run_block
from gateway.core.stream import stream_graph, to_command
from gateway.shared.protocol import Filter
from gateway.shared.records import Event
from gateway.shared.serde import dumps
from tests._server import ROOT

CONFIG = ROOT / "tests" / "graphs" / "protocol.json"


async def _run_events(graph_id: str, graph_input: Any, *, thread_id: str, command: Any = None) -> list[Event]:
    """A run's events as the core publishes them (metadata, the graph's parts, end)."""
    spec = load_config(CONFIG).graphs[graph_id]
    graph = spec.graph.copy(update={"checkpointer": _SAVER})
    parts = [("metadata", (), b"{}")]
    config = {"configurable": {"thread_id": thread_id}}
    graph_input = to_command(command) if command else graph_input
    async for part in stream_graph(
        graph, graph_input, config, stream_mode=PROTOCOL_MODES, subgraphs=True, run_id=str(uuid.uuid4())
    ):
        parts.append(part)
    parts.append(("end", (), b'{"status":"success"}'))
    return [Event(i + 1, name, ns, data) for i, (name, ns, data) in enumerate(parts)]


_SAVER = InMemorySaver()


def _decoded(out: list[tuple[str, Any, bytes, Any]]) -> list[tuple[str, Any, Any]]:
    return [(method, ns, orjson.loads(data)) for method, ns, data, _ in out]


async def test_messages_are_the_content_block_events_langchain_makes() -> None:
    events = await _run_events(
        "tool_agent", {"messages": [{"role": "user", "content": "hi Oslo"}]}, thread_id=str(uuid.uuid4())
    )
    _, out = translate("tool_agent", events)
    got = [data for method, _, data in _decoded(out) if method == "messages"]
    # The same chunks through LangChain's own bridge (what the reference's models emit).
    chunks = [orjson.loads(e.data)[0] for e in events if e.name == "messages"]
    chunks = [c for c in chunks if c["type"] == "AIMessageChunk"]  # not the tool's result
    expected: list[Any] = []
    for message_id in dict.fromkeys(c["id"] for c in chunks):
        mine = [ChatGenerationChunk(message=AIMessageChunk.model_validate(c)) for c in chunks if c["id"] == message_id]
        expected.extend(orjson.loads(dumps(e)) for e in chunks_to_events(iter(mine)))
    assert got == expected
    assert [d["event"] for d in got].count("message-finish") == 2


async def test_the_same_run_translates_the_same_every_time() -> None:
    events = await _run_events("nested", {"topic": "x"}, thread_id=str(uuid.uuid4()))
    assert translate("nested", events)[1] == translate("nested", events)[1]


async def test_interrupts_and_lifecycle_of_a_subgraph() -> None:
    thread_id = str(uuid.uuid4())
    events = await _run_events("nested", {"topic": "x"}, thread_id=thread_id)
    translator, out = translate("nested", events)
    decoded = _decoded(out)
    lifecycle = [(len(ns), d["event"]) for m, ns, d in decoded if m == "lifecycle"]
    assert lifecycle == [(0, "running"), (1, "started"), (1, "interrupted"), (0, "interrupted")]
    assert decoded[-1][0] == "lifecycle"  # the run's end is its last event
    requests = [(ns, d) for m, ns, d in decoded if m == "input.requested"]
    assert len(requests) == 1 and requests[0][0][0].startswith("writer:")
    assert requests[0][1]["payload"] == requests[0][1]["value"] == {"joke": "a joke from inside the subgraph"}
    # No values event keeps the interrupt in the state.
    assert all("__interrupt__" not in d for m, _, d in decoded if m == "values")
    # The subgraph is announced before its first event.
    first_inner = next(i for i, (_, ns, _) in enumerate(decoded) if ns)
    assert decoded[first_inner][0] == "lifecycle" and decoded[first_inner][2]["event"] == "started"
    assert translator.tree()["children"][0]["status"] == "interrupted"
    resumed = await _run_events("nested", None, thread_id=thread_id, command={"resume": "ok"})
    assert [d["event"] for m, ns, d in _decoded(translate("nested", resumed)[1]) if m == "lifecycle" and not ns] == [
        "running",
        "completed",
    ]


def test_a_failed_run_ends_failed_with_its_error() -> None:
    translator = RunTranslator("failing")
    out = []
    for event in [
        Event(1, "metadata", (), b"{}"),
        Event(2, "error", (), b'{"error":"ValueError","message":"boom"}'),
        Event(3, "end", (), b'{"status":"error"}'),
    ]:
        out.extend(translator.feed(event))
    assert _decoded(out)[-1] == ("lifecycle", (), {"event": "failed", "graph_name": "failing", "error": "boom"})


def test_custom_data_and_named_custom_data() -> None:
    translator = RunTranslator("g")
    plain = translator.feed(Event(1, "custom", (), b'{"progress":50}'))
    named = translator.feed(Event(2, "custom", (), b'{"name":"weather","payload":{"t":1}}'))
    assert plain[0][2] == b'{"payload":{"progress":50}}'
    assert named[0][2] == b'{"name":"weather","payload":{"t":1}}'


def test_seq_blocks_follow_the_runs_creation() -> None:
    created = 1_700_000_000_000
    early = str(uuid.UUID(int=(created + 5) << 80 | (0x7 << 76)))
    later = str(uuid.UUID(int=(created + 6) << 80 | (0x7 << 76)))
    assert run_block(early, created) == 5 << SEQ_BITS
    assert run_block(later, created) - run_block(early, created) == 1 << SEQ_BITS


def test_filters_match_namespace_prefixes_and_depth() -> None:
    wanted = Filter(frozenset({"values", "custom:weather"}), (("writer",),), 1)
    assert wanted.wants("values") and not wanted.wants("messages")
    assert wanted.wants("custom", "weather") and not wanted.wants("custom", "other")
    assert wanted.covers(("writer:1",)) and wanted.covers(("writer:1", "inner:2"))
    assert not wanted.covers(("writer:1", "inner:2", "deep:3")) and not wanted.covers(())
    assert not Filter(frozenset({"values"}), (("writer:2",),)).covers(("writer:1",))
    assert Filter(frozenset({"values"})).covers(("anything:1", "deeper:2"))
