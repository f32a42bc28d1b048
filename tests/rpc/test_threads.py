"""Threads over gRPC: create, get, search, delete, state and history, and what survives a restart."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import grpc
import pytest
from langgraph.gateway.v1 import assistants_pb2, runs_pb2, threads_pb2

from tests._server import GRAPH_COUNT, GatewayProcess
from tests.conftest import Stubs, make_stubs
from tests.rpc.test_run_stream import stream, value


async def test_assistants_have_the_agent_servers_ids(stubs: Stubs) -> None:
    by_name = await stubs.assistants.GetAssistant(assistants_pb2.GetAssistantRequest(assistant_id="agent"))
    assert by_name.assistant_id == "fe096781-5601-53d2-b2f6-0d3403f7e9ca"
    by_id = await stubs.assistants.GetAssistant(assistants_pb2.GetAssistantRequest(assistant_id=by_name.assistant_id))
    assert by_id == by_name
    # The system assistants: other tests make assistants of their own.
    system = assistants_pb2.SearchAssistantsRequest(graph_id="chat")
    system.metadata.update({"created_by": "system"})
    found = await stubs.assistants.SearchAssistants(system)
    assert [a.graph_id for a in found.assistants] == ["chat"]
    assert dict(found.assistants[0].metadata) == {"created_by": "system"}
    system.graph_id, system.limit = "", 100
    everything = await stubs.assistants.SearchAssistants(system)
    assert len(everything.assistants) == GRAPH_COUNT


async def test_thread_create_get_search_delete(stubs: Stubs) -> None:
    tag = uuid.uuid4().hex
    request = threads_pb2.CreateThreadRequest()
    request.metadata.update({"tag": tag, "n": 1})
    thread = await stubs.threads.CreateThread(request)
    assert thread.status == threads_pb2.THREAD_STATUS_IDLE
    got = await stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=thread.thread_id))
    assert got.thread_id == thread.thread_id and got.metadata["tag"] == tag
    search = threads_pb2.SearchThreadsRequest()
    search.metadata.update({"tag": tag})
    found = await stubs.threads.SearchThreads(search)
    assert [t.thread_id for t in found.threads] == [thread.thread_id]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest(thread_id=thread.thread_id))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    same = await stubs.threads.CreateThread(
        threads_pb2.CreateThreadRequest(thread_id=thread.thread_id, if_exists="do_nothing")
    )
    assert same.thread_id == thread.thread_id
    await stubs.threads.DeleteThread(threads_pb2.DeleteThreadRequest(thread_id=thread.thread_id))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=thread.thread_id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_state_and_history_after_runs(stubs: Stubs) -> None:
    thread = await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest())
    empty = await stubs.threads.GetThreadState(threads_pb2.GetThreadStateRequest(thread_id=thread.thread_id))
    assert json.loads(empty.values_json) == {} and not empty.HasField("checkpoint")
    await stream(stubs, assistant_id="agent", thread_id=thread.thread_id, input=value({"topic": "a"}))
    await stream(stubs, assistant_id="agent", thread_id=thread.thread_id, input=value({"topic": "b"}))
    state = await stubs.threads.GetThreadState(threads_pb2.GetThreadStateRequest(thread_id=thread.thread_id))
    assert json.loads(state.values_json) == {"topic": "b and cats", "joke": "This is a joke about b and cats"}
    assert list(state.next) == []
    assert state.checkpoint.thread_id == thread.thread_id and state.checkpoint.checkpoint_id
    history = await stubs.threads.GetThreadHistory(
        threads_pb2.GetThreadHistoryRequest(thread_id=thread.thread_id, limit=100)
    )
    assert history.states[0].checkpoint.checkpoint_id == state.checkpoint.checkpoint_id
    assert len(history.states) == 8  # two runs of input, start, two nodes
    older = await stubs.threads.GetThreadState(
        threads_pb2.GetThreadStateRequest(
            thread_id=thread.thread_id, checkpoint_id=history.states[4].checkpoint.checkpoint_id
        )
    )
    assert json.loads(older.values_json) == {"topic": "a and cats", "joke": "This is a joke about a and cats"}
    before = await stubs.threads.GetThreadHistory(
        threads_pb2.GetThreadHistoryRequest(thread_id=thread.thread_id, limit=2, before=state.checkpoint.checkpoint_id)
    )
    assert [s.checkpoint.checkpoint_id for s in before.states] == [
        s.checkpoint.checkpoint_id for s in history.states[1:3]
    ]
    stored = await stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=thread.thread_id))
    assert json.loads(stored.values_json) == json.loads(state.values_json)
    assert stored.metadata["graph_id"] == "agent"


async def test_threads_runs_and_checkpoints_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "gateway.sqlite"
    first = GatewayProcess(db).start()
    try:
        async with grpc.aio.insecure_channel(first.grpc_target) as channel:
            stubs = make_stubs(channel)
            thread = await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest())
            events = await stream(stubs, assistant_id="agent", thread_id=thread.thread_id, input=value({"topic": "x"}))
            run_id = events[0].metadata.run_id
            before = await stubs.threads.GetThreadState(threads_pb2.GetThreadStateRequest(thread_id=thread.thread_id))
        assert first.terminate() == 0
    finally:
        first.kill()
    second = GatewayProcess(db).start()
    try:
        async with grpc.aio.insecure_channel(second.grpc_target) as channel:
            stubs = make_stubs(channel)
            after = await stubs.threads.GetThreadState(threads_pb2.GetThreadStateRequest(thread_id=thread.thread_id))
            assert after == before
            run = await stubs.runs.GetRun(runs_pb2.GetRunRequest(thread_id=thread.thread_id, run_id=run_id))
            assert run.status == runs_pb2.RUN_STATUS_SUCCESS
            history = await stubs.threads.GetThreadHistory(
                threads_pb2.GetThreadHistoryRequest(thread_id=thread.thread_id, limit=10)
            )
            assert len(history.states) == 4
            # And the thread goes on from where it was.
            more = await stream(stubs, assistant_id="agent", thread_id=thread.thread_id, input=value({"topic": "y"}))
            assert more[-1].end.status == runs_pb2.RUN_STATUS_SUCCESS
    finally:
        second.kill()
