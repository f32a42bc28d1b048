"""Background runs, joining, waiting, cancelling, interrupts and the one-run-per-thread queue."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from langgraph.gateway.v1 import runs_pb2, threads_pb2

from tests.conftest import Stubs
from tests.rpc.test_run_stream import MODES, new_thread, stream, value


def create(
    assistant_id: str, thread_id: str = "", graph_input: dict | None = None, **fields
) -> runs_pb2.CreateRunRequest:  # type: ignore[no-untyped-def]
    modes = fields.pop("stream_mode", ["values"])
    request = runs_pb2.CreateRunRequest(
        assistant_id=assistant_id, thread_id=thread_id, stream_mode=[MODES[m] for m in modes], **fields
    )
    if graph_input is not None:
        request.input.CopyFrom(value(graph_input))
    return request


async def wait_status(stubs: Stubs, thread_id: str, run_id: str, status: int) -> runs_pb2.Run:
    for _ in range(200):
        run = await stubs.runs.GetRun(runs_pb2.GetRunRequest(thread_id=thread_id, run_id=run_id))
        if run.status == status:
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} never reached status {status}: {run.status}")


async def test_background_run_can_be_joined_from_the_start(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    run = await stubs.runs.CreateRun(create("custom", thread_id, {"query": "q"}, stream_mode=["custom", "updates"]))
    # On an idle thread a run is taken at once by the process that created it.
    assert run.status in (runs_pb2.RUN_STATUS_PENDING, runs_pb2.RUN_STATUS_RUNNING)
    events = [
        e
        async for e in stubs.runs.JoinRunStream(
            runs_pb2.JoinRunStreamRequest(thread_id=thread_id, run_id=run.run_id, last_event_id="0")
        )
    ]
    assert [e.WhichOneof("event") for e in events] == ["metadata", "custom", "custom", "updates", "end"]
    assert events[-1].end.status == runs_pb2.RUN_STATUS_SUCCESS
    # Resuming after an event id replays only what came after it.
    after = [
        e
        async for e in stubs.runs.JoinRunStream(
            runs_pb2.JoinRunStreamRequest(thread_id=thread_id, run_id=run.run_id, last_event_id=events[1].event_id)
        )
    ]
    assert [e.event_id for e in after] == [e.event_id for e in events[2:]]


async def test_batched_join_replays_like_the_plain_one(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    run = await stubs.runs.CreateRun(create("custom", thread_id, {"query": "q"}, stream_mode=["custom", "updates"]))
    join = runs_pb2.JoinRunStreamRequest(thread_id=thread_id, run_id=run.run_id, last_event_id="0")
    plain = [e async for e in stubs.runs.JoinRunStream(join)]
    batched = [e async for b in stubs.runs.JoinRunStreamBatch(join) for e in b.events]
    assert batched == plain


async def test_join_filters_by_stream_mode(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    run = await stubs.runs.CreateRun(create("custom", thread_id, {"query": "q"}, stream_mode=["custom", "updates"]))
    request = runs_pb2.JoinRunStreamRequest(
        thread_id=thread_id, run_id=run.run_id, last_event_id="-1", stream_mode=[runs_pb2.STREAM_MODE_UPDATES]
    )
    kinds = [e.WhichOneof("event") async for e in stubs.runs.JoinRunStream(request)]
    assert kinds == ["metadata", "updates", "end"]


async def test_live_join_sees_events_published_after_joining(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    run = await stubs.runs.CreateRun(create("slow", thread_id, {"n": 30, "delay": 0.02}, stream_mode=["custom"]))
    await wait_status(stubs, thread_id, run.run_id, runs_pb2.RUN_STATUS_RUNNING)
    ticks = [
        json.loads(e.custom.json)["tick"]
        async for e in stubs.runs.JoinRunStream(runs_pb2.JoinRunStreamRequest(thread_id=thread_id, run_id=run.run_id))
        if e.HasField("custom")
    ]
    assert ticks and ticks == list(range(ticks[0], 30))


async def test_wait_run_returns_the_final_values(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    result = await stubs.runs.WaitRun(create("agent", thread_id, {"topic": "pie"}))
    assert result.run.status == runs_pb2.RUN_STATUS_SUCCESS
    assert json.loads(result.result_json) == {"topic": "pie and cats", "joke": "This is a joke about pie and cats"}
    joined = await stubs.runs.JoinRun(runs_pb2.JoinRunRequest(thread_id=thread_id, run_id=result.run.run_id))
    assert json.loads(joined.result_json) == json.loads(result.result_json)
    failed = await stubs.runs.WaitRun(create("failing", "", {"topic": "x"}))
    assert json.loads(failed.result_json) == {
        "__error__": {"error": "ValueError", "message": "the node failed on purpose"}
    }


async def test_cancel_interrupts_a_running_run(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    call = stubs.runs.RunStream(create("slow", thread_id, {"n": 500, "delay": 0.02}, stream_mode=["custom"]))
    first = await call.read()
    await call.read()
    cancelled = await stubs.runs.CancelRun(
        runs_pb2.CancelRunRequest(thread_id=thread_id, run_id=first.metadata.run_id, wait=True)
    )
    assert cancelled.status == runs_pb2.RUN_STATUS_INTERRUPTED
    rest = []
    while (event := await call.read()) is not grpc.aio.EOF:
        rest.append(event)
    assert rest[-1].end.status == runs_pb2.RUN_STATUS_INTERRUPTED
    thread = await stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=thread_id))
    assert thread.status == threads_pb2.THREAD_STATUS_INTERRUPTED
    err = None
    try:
        await stubs.runs.CancelRun(runs_pb2.CancelRunRequest(thread_id=thread_id, run_id=first.metadata.run_id))
    except grpc.aio.AioRpcError as exc:
        err = exc
    assert err is not None and err.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_cancelling_every_run_reaches_stateless_ones(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    long = {"n": 500, "delay": 0.02}
    on_thread = await stubs.runs.CreateRun(create("slow", thread_id, long, stream_mode=["custom"]))
    stateless = await stubs.runs.CreateRun(create("slow", "", long, stream_mode=["custom"]))
    every = runs_pb2.CancelRunsRequest(status=runs_pb2.CANCEL_STATUS_ALL)
    assert (await stubs.runs.CancelRuns(every)).count >= 2
    for run in (on_thread, stateless):
        request = runs_pb2.JoinRunStreamRequest(thread_id=run.thread_id, run_id=run.run_id)
        events = [e async for e in stubs.runs.JoinRunStream(request)]
        assert events[-1].end.status == runs_pb2.RUN_STATUS_INTERRUPTED, run.run_id


async def test_client_cancel_with_on_disconnect_cancel_stops_the_run(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    call = stubs.runs.RunStream(
        create(
            "slow",
            thread_id,
            {"n": 500, "delay": 0.02},
            stream_mode=["custom"],
            on_disconnect=runs_pb2.ON_DISCONNECT_CANCEL,
        )
    )
    run_id = (await call.read()).metadata.run_id
    await call.read()
    call.cancel()
    await wait_status(stubs, thread_id, run_id, runs_pb2.RUN_STATUS_INTERRUPTED)


async def test_client_cancel_by_default_lets_the_run_finish(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    call = stubs.runs.RunStream(create("slow", thread_id, {"n": 10, "delay": 0.02}, stream_mode=["custom"]))
    run_id = (await call.read()).metadata.run_id
    call.cancel()
    await wait_status(stubs, thread_id, run_id, runs_pb2.RUN_STATUS_SUCCESS)


async def test_runs_on_one_thread_queue_and_reject_when_asked(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    first = await stubs.runs.CreateRun(create("slow", thread_id, {"n": 10, "delay": 0.02}))
    second = await stubs.runs.CreateRun(create("agent", thread_id, {"topic": "x"}))
    assert second.status == runs_pb2.RUN_STATUS_PENDING
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.runs.CreateRun(
            create("agent", thread_id, {"topic": "x"}, multitask_strategy=runs_pb2.MULTITASK_STRATEGY_REJECT)
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert thread_id in err.value.details()
    await wait_status(stubs, thread_id, second.run_id, runs_pb2.RUN_STATUS_SUCCESS)
    done_first = await stubs.runs.GetRun(runs_pb2.GetRunRequest(thread_id=thread_id, run_id=first.run_id))
    assert done_first.status == runs_pb2.RUN_STATUS_SUCCESS
    listed = await stubs.runs.ListRuns(runs_pb2.ListRunsRequest(thread_id=thread_id))
    assert [r.run_id for r in listed.runs] == [second.run_id, first.run_id]


async def test_multitask_interrupt_stops_the_active_run(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    first = await stubs.runs.CreateRun(create("slow", thread_id, {"n": 500, "delay": 0.02}))
    await wait_status(stubs, thread_id, first.run_id, runs_pb2.RUN_STATUS_RUNNING)
    events = await stream(
        stubs,
        assistant_id="agent",
        thread_id=thread_id,
        input=value({"topic": "x"}),
        multitask_strategy=runs_pb2.MULTITASK_STRATEGY_INTERRUPT,
    )
    assert events[-1].end.status == runs_pb2.RUN_STATUS_SUCCESS
    stopped = await stubs.runs.GetRun(runs_pb2.GetRunRequest(thread_id=thread_id, run_id=first.run_id))
    assert stopped.status == runs_pb2.RUN_STATUS_INTERRUPTED


async def test_interrupt_and_resume(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    events = await stream(
        stubs, assistant_id="approval", thread_id=thread_id, input=value({"action": "deploy"}), stream_mode=["updates"]
    )
    update = json.loads(events[1].updates.json)
    interrupt = update["__interrupt__"][0]
    assert interrupt["value"] == {"question": "Approve 'deploy'?"} and interrupt["id"]
    assert events[-1].end.status == runs_pb2.RUN_STATUS_SUCCESS
    thread = await stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=thread_id))
    assert thread.status == threads_pb2.THREAD_STATUS_INTERRUPTED
    assert list(json.loads(thread.interrupts_json).values()) == [[{"id": interrupt["id"], "value": interrupt["value"]}]]
    resume = runs_pb2.CreateRunRequest(
        assistant_id="approval", thread_id=thread_id, stream_mode=[runs_pb2.STREAM_MODE_VALUES]
    )
    resume.command.update({"resume": "yes"})
    resumed = [e async for e in stubs.runs.RunStream(resume)]
    assert json.loads(resumed[-2].values.json) == {"action": "deploy", "approved": True}
    thread = await stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=thread_id))
    assert thread.status == threads_pb2.THREAD_STATUS_IDLE


async def test_interrupt_before_stops_before_the_node(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    events = await stream(
        stubs,
        assistant_id="agent",
        thread_id=thread_id,
        input=value({"topic": "x"}),
        stream_mode=["updates"],
        interrupt_before=["generate_joke"],
    )
    updates = [json.loads(e.updates.json) for e in events if e.HasField("updates")]
    assert updates == [{"refine_topic": {"topic": "x and cats"}}, {"__interrupt__": []}]
    state = await stubs.threads.GetThreadState(threads_pb2.GetThreadStateRequest(thread_id=thread_id))
    assert list(state.next) == ["generate_joke"]
    # A null input continues from the checkpoint.
    rest = await stream(stubs, assistant_id="agent", thread_id=thread_id, stream_mode=["updates"])
    assert [json.loads(e.updates.json) for e in rest if e.HasField("updates")] == [
        {"generate_joke": {"joke": "This is a joke about x and cats"}}
    ]
