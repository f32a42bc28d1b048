"""RunStream over a real channel: every stream mode, several at once, subgraphs, stateless
runs, and payloads equal to what LangGraph's own astream yields."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from langgraph.gateway.v1 import runs_pb2, threads_pb2

from tests._normalise import Normaliser
from tests._reference import STREAM_CASES as CASES
from tests._reference import astream, without_task_checkpoints
from tests.conftest import Stubs

MODES = {
    "values": runs_pb2.STREAM_MODE_VALUES,
    "updates": runs_pb2.STREAM_MODE_UPDATES,
    "messages-tuple": runs_pb2.STREAM_MODE_MESSAGES_TUPLE,
    "messages": runs_pb2.STREAM_MODE_MESSAGES,
    "debug": runs_pb2.STREAM_MODE_DEBUG,
    "custom": runs_pb2.STREAM_MODE_CUSTOM,
    "events": runs_pb2.STREAM_MODE_EVENTS,
    "tasks": runs_pb2.STREAM_MODE_TASKS,
    "checkpoints": runs_pb2.STREAM_MODE_CHECKPOINTS,
}
GRAPH_MODE = {"messages-tuple": "messages"}


def value(obj: Any) -> struct_pb2.Value:
    v = struct_pb2.Value()
    if isinstance(obj, dict):
        v.struct_value.SetInParent()
        v.struct_value.update(obj)
    return v


async def new_thread(stubs: Stubs) -> str:
    thread = await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest())
    return thread.thread_id


async def stream(stubs: Stubs, **fields: Any) -> list[runs_pb2.RunEvent]:
    modes = fields.pop("stream_mode", ["values"])
    request = runs_pb2.CreateRunRequest(stream_mode=[MODES[m] for m in modes], **fields)
    return [event async for event in stubs.runs.RunStream(request)]


def payloads(events: list[runs_pb2.RunEvent]) -> list[tuple[tuple[str, ...], str, Any]]:
    out = []
    for e in events:
        case = e.WhichOneof("event")
        if case in ("metadata", "end", "error"):
            continue
        out.append((tuple(e.namespace), case, json.loads(getattr(e, case).json)))
    return out


@pytest.mark.parametrize(("graph", "graph_input", "modes"), CASES, ids=[f"{g}-{'+'.join(m)}" for g, _, m in CASES])
async def test_payloads_equal_langgraph_astream(stubs: Stubs, graph: str, graph_input: dict, modes: list[str]) -> None:
    thread_id = await new_thread(stubs)
    events = await stream(stubs, assistant_id=graph, thread_id=thread_id, input=value(graph_input), stream_mode=modes)
    assert events[0].WhichOneof("event") == "metadata"
    assert events[-1].end.status == runs_pb2.RUN_STATUS_SUCCESS
    got = without_task_checkpoints(payloads(events))
    want = without_task_checkpoints(await astream(graph, graph_input, [GRAPH_MODE.get(m, m) for m in modes]))
    assert len(got) == len(want)
    assert Normaliser()(got) == Normaliser()(want)


async def test_subgraph_events_carry_namespaces(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    events = await stream(
        stubs,
        assistant_id="subgraphs",
        thread_id=thread_id,
        input=value({"foo": "foo"}),
        stream_mode=["updates", "values"],
        stream_subgraphs=True,
    )
    got = payloads(events)
    want = await astream("subgraphs", {"foo": "foo"}, ["updates", "values"], subgraphs=True)
    assert Normaliser()(got) == Normaliser()(want)
    namespaces = {ns for ns, _, _ in got if ns}
    assert namespaces and all(len(ns) == 1 and ns[0].startswith("node_2:") for ns in namespaces)
    # Without stream_subgraphs only the root graph's events arrive.
    root_only = await stream(
        stubs,
        assistant_id="subgraphs",
        thread_id=await new_thread(stubs),
        input=value({"foo": "foo"}),
        stream_mode=["updates"],
    )
    assert all(not e.namespace for e in root_only)
    assert [list(json.loads(e.updates.json)) for e in root_only if e.HasField("updates")] == [["node_1"], ["node_2"]]


async def test_event_ids_increase_strictly_and_metadata_comes_first(stubs: Stubs) -> None:
    events = await stream(stubs, assistant_id="burst", input=value({"n": 300}), stream_mode=["custom", "updates"])
    ids = [tuple(int(p) for p in e.event_id.split("-")) for e in events]
    assert ids == sorted(set(ids))
    assert len({ms for ms, _ in ids}) == 1
    assert [seq for _, seq in ids] == list(range(1, len(events) + 1))
    assert events[0].metadata.run_id and events[0].metadata.attempt == 1
    assert [json.loads(e.custom.json)["i"] for e in events if e.HasField("custom")] == list(range(300))
    assert events[-1].WhichOneof("event") == "end"


async def test_legacy_messages_mode_accumulates_partial_messages(stubs: Stubs) -> None:
    events = await stream(stubs, assistant_id="chat", input=value({"topic": "pie"}), stream_mode=["messages"])
    messages = [e.messages for e in events if e.HasField("messages")]
    assert messages[0].kind == runs_pb2.MESSAGES_EVENT_KIND_METADATA
    partial = [json.loads(m.json)[0] for m in messages if m.kind == runs_pb2.MESSAGES_EVENT_KIND_PARTIAL]
    assert partial[-1]["content"] == "Why did the pie cross the road? To get to the other side!"
    assert all(p["type"] == "ai" for p in partial)
    # Each partial is the accumulated message so far.
    assert [len(p["content"]) for p in partial] == sorted(len(p["content"]) for p in partial)


async def test_events_mode_streams_langchain_events(stubs: Stubs) -> None:
    events = await stream(stubs, assistant_id="agent", input=value({"topic": "x"}), stream_mode=["events"])
    kinds = [json.loads(e.events.json) for e in events if e.HasField("events")]
    assert kinds[0]["event"] == "on_chain_start" and kinds[0]["name"] == "agent"
    assert kinds[-1]["event"] == "on_chain_end" and kinds[-1]["name"] == "agent"
    assert kinds[-1]["data"]["output"] == {"topic": "x and cats", "joke": "This is a joke about x and cats"}
    # The root graph's own stream chunks are not forwarded as events.
    root_run = kinds[0]["run_id"]
    assert not [k for k in kinds if k["event"] == "on_chain_stream" and k["run_id"] == root_run]
    assert {k["name"] for k in kinds} >= {"refine_topic", "generate_joke"}


async def test_stateless_run_leaves_no_thread_and_no_checkpoints(stubs: Stubs) -> None:
    events = await stream(
        stubs, assistant_id="agent", input=value({"topic": "x"}), stream_mode=["updates", "checkpoints"]
    )
    assert [e.WhichOneof("event") for e in events] == ["metadata", "updates", "updates", "end"]
    thread_id = events[0].metadata.thread_id
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=thread_id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_keep_thread_keeps_a_stateless_runs_thread(stubs: Stubs) -> None:
    events = await stream(
        stubs, assistant_id="agent", input=value({"topic": "x"}), stream_mode=["updates"], keep_thread=True
    )
    thread_id = events[0].metadata.thread_id
    thread = await stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=thread_id))
    assert thread.status == threads_pb2.THREAD_STATUS_IDLE
    # A kept thread has its state, as a thread made beforehand would.
    state = await stubs.threads.GetThreadState(threads_pb2.GetThreadStateRequest(thread_id=thread_id))
    assert json.loads(state.values_json) == {"topic": "x and cats", "joke": "This is a joke about x and cats"}


async def test_batched_stream_carries_the_same_events_in_fewer_messages(stubs: Stubs) -> None:
    request = runs_pb2.CreateRunRequest(
        assistant_id="burst", input=value({"n": 3000}), stream_mode=[runs_pb2.STREAM_MODE_CUSTOM]
    )
    batches = [b async for b in stubs.runs.RunStreamBatch(request)]
    events = [e for b in batches for e in b.events]
    assert all(b.events for b in batches)
    assert len(batches) < len(events)
    assert [e.WhichOneof("event") for e in events] == ["metadata", *["custom"] * 3000, "end"]
    assert [int(e.event_id.rsplit("-", 1)[1]) for e in events] == list(range(1, 3003))
    assert [json.loads(e.custom.json)["i"] for e in events[1:-1]] == list(range(3000))
    join = runs_pb2.JoinRunStreamRequest(
        thread_id=events[0].metadata.thread_id, run_id=events[0].metadata.run_id, last_event_id="0"
    )
    # A finished stateless run's thread is gone, but the run replays while it is in memory.
    replayed = [e async for b in stubs.runs.JoinRunStreamBatch(join) for e in b.events]
    assert replayed == events
