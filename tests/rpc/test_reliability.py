"""Nothing a client was promised gets lost: resumable logs, replay/live handover, rollbacks,
crashes and full queues."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import grpc
import httpx
import pytest
from langgraph.gateway.v1 import runs_pb2, threads_pb2

from tests._server import GatewayProcess
from tests.conftest import BACKENDS, Stubs, backend_args, make_stubs, own_gateway
from tests.http._sse import parse
from tests.rpc.test_run_stream import new_thread, stream, value
from tests.rpc.test_runs import create, wait_status

N = 10_000  # more than the 4,096 events a run's ring holds


async def join(stubs: Stubs, thread_id: str, run_id: str, last_event_id: str) -> list[runs_pb2.RunEvent]:
    request = runs_pb2.JoinRunStreamRequest(thread_id=thread_id, run_id=run_id, last_event_id=last_event_id)
    return [e async for e in stubs.runs.JoinRunStream(request)]


def seqs(events: list[runs_pb2.RunEvent]) -> list[int]:
    return [int(e.event_id.rsplit("-", 1)[1]) for e in events]


async def test_joins_racing_a_resumable_run_get_every_event_once(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    run = await stubs.runs.CreateRun(
        create("burst", thread_id, {"n": N}, stream_mode=["custom"], stream_resumable=True)
    )
    # Joins from the start, started at different moments: some replay from the log, some from
    # the ring, all hand over to live events while the run is still writing.
    joins = []
    for delay in (0, 0.05, 0.1, 0.2, 0.4):
        await asyncio.sleep(delay)
        joins.append(asyncio.create_task(join(stubs, thread_id, run.run_id, "0")))
    for events in await asyncio.gather(*joins):
        assert seqs(events) == list(range(1, N + 3))  # metadata, N customs, end
        assert [json.loads(e.custom.json)["i"] for e in events if e.HasField("custom")] == list(range(N))
        assert events[-1].end.status == runs_pb2.RUN_STATUS_SUCCESS
    # Resuming from the middle replays exactly what came after.
    rest = await join(stubs, thread_id, run.run_id, events[N // 2].event_id)
    assert rest == events[N // 2 + 1 :]
    # An event id of another run is refused, not misread.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await join(stubs, thread_id, run.run_id, f"123-{N // 2}")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("resumable", [False, True])
async def test_a_join_with_an_event_id_not_ours_follows_the_run_live(stubs: Stubs, resumable: bool) -> None:
    thread_id = await new_thread(stubs)
    request = create("slow", thread_id, {"n": 4, "delay": 0.3}, stream_mode=["custom"], stream_resumable=resumable)
    run = await stubs.runs.CreateRun(request)
    await wait_status(stubs, thread_id, run.run_id, runs_pb2.RUN_STATUS_RUNNING)
    events = await join(stubs, thread_id, run.run_id, "mock_event_20")
    assert [e.WhichOneof("event") for e in events[:-1]] == ["custom"] * (len(events) - 1)
    ticks = [json.loads(e.custom.json)["tick"] for e in events[:-1]]
    assert ticks and ticks == list(range(4 - len(ticks), 4))
    assert events[-1].end.status == runs_pb2.RUN_STATUS_SUCCESS
    # An id of ours of another run is still refused.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await join(stubs, thread_id, run.run_id, "123-1")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_finished_resumable_run_replays_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "gateway.sqlite"
    first = GatewayProcess(db).start()
    try:
        async with grpc.aio.insecure_channel(first.grpc_target) as channel:
            stubs = make_stubs(channel)
            thread_id = await new_thread(stubs)
            live = await stream(
                stubs,
                assistant_id="custom",
                thread_id=thread_id,
                input=value({"query": "q"}),
                stream_mode=["updates", "custom"],
                stream_resumable=True,
            )
        first.terminate()
    finally:
        first.kill()
    second = GatewayProcess(db).start()
    try:
        async with grpc.aio.insecure_channel(second.grpc_target) as channel:
            stubs = make_stubs(channel)
            run_id = live[0].metadata.run_id
            replayed = await join(stubs, thread_id, run_id, "-1")
            assert replayed == live
            assert await join(stubs, thread_id, run_id, live[1].event_id) == live[2:]
            # Without an id there is nothing to replay: only how the run ended.
            ended = await join(stubs, thread_id, run_id, "")
            assert [e.WhichOneof("event") for e in ended] == ["end"]
    finally:
        second.kill()


async def test_cancel_with_rollback_deletes_the_run_and_its_checkpoints(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    await stream(stubs, assistant_id="slow", thread_id=thread_id, input=value({"n": 1, "delay": 0}))
    history = await stubs.threads.GetThreadHistory(threads_pb2.GetThreadHistoryRequest(thread_id=thread_id, limit=50))
    run = await stubs.runs.CreateRun(create("slow", thread_id, {"n": 500, "delay": 0.02}))
    await wait_status(stubs, thread_id, run.run_id, runs_pb2.RUN_STATUS_RUNNING)
    await asyncio.sleep(0.2)
    await stubs.runs.CancelRun(
        runs_pb2.CancelRunRequest(
            thread_id=thread_id, run_id=run.run_id, action=runs_pb2.CANCEL_ACTION_ROLLBACK, wait=True
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.runs.GetRun(runs_pb2.GetRunRequest(thread_id=thread_id, run_id=run.run_id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    after = await stubs.threads.GetThreadHistory(threads_pb2.GetThreadHistoryRequest(thread_id=thread_id, limit=50))
    assert [s.checkpoint.checkpoint_id for s in after.states] == [s.checkpoint.checkpoint_id for s in history.states]
    state = await stubs.threads.GetThreadState(threads_pb2.GetThreadStateRequest(thread_id=thread_id))
    assert json.loads(state.values_json) == {"n": 1, "delay": 0, "ticks": 1}


async def test_multitask_rollback_starts_from_the_state_before_the_active_run(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    first = await stubs.runs.CreateRun(create("slow", thread_id, {"n": 500, "delay": 0.02}))
    await wait_status(stubs, thread_id, first.run_id, runs_pb2.RUN_STATUS_RUNNING)
    events = await stream(
        stubs,
        assistant_id="agent",
        thread_id=thread_id,
        input=value({"topic": "x"}),
        multitask_strategy=runs_pb2.MULTITASK_STRATEGY_ROLLBACK,
    )
    assert events[-1].end.status == runs_pb2.RUN_STATUS_SUCCESS
    with pytest.raises(grpc.aio.AioRpcError):
        await stubs.runs.GetRun(runs_pb2.GetRunRequest(thread_id=thread_id, run_id=first.run_id))
    state = await stubs.threads.GetThreadState(threads_pb2.GetThreadStateRequest(thread_id=thread_id))
    assert json.loads(state.values_json) == {"topic": "x and cats", "joke": "This is a joke about x and cats"}


async def test_after_kill_9_live_runs_go_on_from_their_checkpoint(tmp_path: Path) -> None:
    db = tmp_path / "gateway.sqlite"
    first = GatewayProcess(db).start()
    try:
        async with grpc.aio.insecure_channel(first.grpc_target) as channel:
            stubs = make_stubs(channel)
            done_thread = await new_thread(stubs)
            await stream(stubs, assistant_id="agent", thread_id=done_thread, input=value({"topic": "x"}))
            busy_thread = await new_thread(stubs)
            run = await stubs.runs.CreateRun(create("slow", busy_thread, {"n": 50, "delay": 0.02}))
            queued = await stubs.runs.CreateRun(create("agent", busy_thread, {"topic": "y"}))
            await wait_status(stubs, busy_thread, run.run_id, runs_pb2.RUN_STATUS_RUNNING)
            await asyncio.sleep(0.2)
            done_state = await stubs.threads.GetThreadState(threads_pb2.GetThreadStateRequest(thread_id=done_thread))
        first.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        first.proc.wait(10)  # type: ignore[union-attr]
    finally:
        first.kill()
    second = GatewayProcess(db).start()
    try:
        async with grpc.aio.insecure_channel(second.grpc_target) as channel:
            stubs = make_stubs(channel)
            assert (
                await stubs.threads.GetThreadState(threads_pb2.GetThreadStateRequest(thread_id=done_thread))
                == done_state
            )
            # The killed run is taken again (attempt 2) from its last checkpoint, then the one
            # queued behind it runs. Its first attempt's events, unlogged, died with the
            # process; the second's ids are above any the first could have sent.
            joined = await join(stubs, busy_thread, run.run_id, "0")
            assert [e.metadata.attempt for e in joined if e.HasField("metadata")] == [2]
            assert min(seqs(joined)) > 1_000_000_000
            assert joined[-1].end.status == runs_pb2.RUN_STATUS_SUCCESS
            assert json.loads(joined[-2].values.json)["ticks"] == 50
            result = await stubs.runs.JoinRun(runs_pb2.JoinRunRequest(thread_id=busy_thread, run_id=queued.run_id))
            assert result.run.status == runs_pb2.RUN_STATUS_SUCCESS
            thread = await stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=busy_thread))
            assert thread.status == threads_pb2.THREAD_STATUS_IDLE
            assert json.loads(thread.values_json)["joke"] == "This is a joke about y and cats"
    finally:
        second.kill()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_after_kill_9_a_stateless_background_run_runs_again(backend: str, tmp_path: Path) -> None:
    with backend_args(backend) as backends:
        # A dead process's runs are taken over once their leases run out (Postgres + Redis).
        args = (*backends, "--lease-seconds", "2")
        first = GatewayProcess(tmp_path / "gateway.sqlite", extra_args=args).start()
        try:
            async with grpc.aio.insecure_channel(first.grpc_target) as channel:
                stubs = make_stubs(channel)
                run = await stubs.runs.CreateRun(create("slow", "", {"n": 40, "delay": 0.05}, stream_mode=["custom"]))
                request = runs_pb2.JoinRunStreamRequest(thread_id=run.thread_id, run_id=run.run_id, last_event_id="0")
                async for event in stubs.runs.JoinRunStream(request):
                    if event.HasField("custom"):
                        break  # it runs
            first.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            first.proc.wait(10)  # type: ignore[union-attr]
        finally:
            first.kill()
        second = GatewayProcess(tmp_path / "gateway.sqlite", extra_args=args).start()
        try:
            async with httpx.AsyncClient(base_url=second.http_url, timeout=60) as http:
                joined = await http.get(f"/runs/{run.run_id}/stream", headers={"Last-Event-ID": "-1"})
                assert joined.status_code == 200, joined.text
                events = parse(joined.content)
            # Run again from its input: a stateless run keeps no checkpoints.
            assert [e.data["attempt"] for e in events if e.event == "metadata"] == [2]
            assert [e.data["tick"] for e in events if e.event == "custom"] == list(range(40))
        finally:
            second.kill()


async def test_events_a_client_got_from_a_resumable_run_survive_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "gateway.sqlite"
    first = GatewayProcess(db).start()
    try:
        async with grpc.aio.insecure_channel(first.grpc_target) as channel:
            stubs = make_stubs(channel)
            thread_id = await new_thread(stubs)
            # Its metadata and first tick come at once, sooner than the log's batches; the next
            # tick a second later, after the kill.
            request = create("slow", thread_id, {"n": 4, "delay": 1.0}, stream_mode=["custom"], stream_resumable=True)
            call = stubs.runs.RunStream(request)
            got = [await call.read(), await call.read()]
            assert [e.WhichOneof("event") for e in got] == ["metadata", "custom"]
            first.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            first.proc.wait(10)  # type: ignore[union-attr]
    finally:
        first.kill()
    second = GatewayProcess(db).start()
    try:
        async with grpc.aio.insecure_channel(second.grpc_target) as channel:
            stubs = make_stubs(channel)
            run_id = got[0].metadata.run_id
            await wait_status(stubs, thread_id, run_id, runs_pb2.RUN_STATUS_RUNNING)
            # The client resumes where it was: the second attempt follows, from its start.
            rest = await join(stubs, thread_id, run_id, got[1].event_id)
            assert seqs(rest) == list(range(3, 3 + len(rest)))
            assert rest[0].metadata.attempt == 2
            assert [json.loads(e.custom.json)["tick"] for e in rest if e.HasField("custom")] == [0, 1, 2, 3]
            assert rest[-1].end.status == runs_pb2.RUN_STATUS_SUCCESS
            # From the start, the first attempt's events as the client got them, then the second's.
            assert (await join(stubs, thread_id, run_id, "0"))[:2] == got
    finally:
        second.kill()


async def test_a_full_queue_is_refused_with_resource_exhausted(tmp_path: Path) -> None:
    async with own_gateway(tmp_path / "db.sqlite", "--max-queued-runs", "2") as stubs:
        thread_id = await new_thread(stubs)
        for _ in range(2):
            await stubs.runs.CreateRun(create("slow", thread_id, {"n": 50, "delay": 0.02}))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.runs.CreateRun(create("agent", thread_id, {"topic": "x"}))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert thread_id in err.value.details()


async def test_a_run_past_its_timeout_ends_with_timeout(tmp_path: Path) -> None:
    async with own_gateway(tmp_path / "db.sqlite", "--run-timeout", "0.5") as stubs:
        thread_id = await new_thread(stubs)
        events = await stream(
            stubs,
            assistant_id="slow",
            thread_id=thread_id,
            input=value({"n": 100, "delay": 0.05}),
            stream_mode=["custom"],
        )
        assert events[-1].end.status == runs_pb2.RUN_STATUS_TIMEOUT
        assert not [e for e in events if e.HasField("error")]
        thread = await stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=thread_id))
        assert thread.status == threads_pb2.THREAD_STATUS_ERROR
        assert json.loads(thread.error_json)["error"] == "TimeoutError"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_a_client_that_reads_nothing_costs_no_memory_on_a_resumable_run(
    gateway: GatewayProcess, stubs: Stubs
) -> None:
    # 20,000 events of ~16 KiB would be ~320 MiB if anything between the graph and the
    # client buffered them all. The run goes on; the client catches up from the log.
    request = runs_pb2.CreateRunRequest(
        assistant_id="paced",
        input=value({"n": 20_000, "pad": 16_000}),
        stream_mode=[runs_pb2.STREAM_MODE_CUSTOM],
        stream_resumable=True,
    )
    pid = gateway.proc.pid  # type: ignore[union-attr]
    before = _rss_kib(pid)
    call = stubs.runs.RunStream(request)
    first = await call.read()
    assert first.HasField("metadata")
    peak = 0
    for _ in range(30):  # read nothing for 3 s
        await asyncio.sleep(0.1)
        peak = max(peak, _rss_kib(pid) - before)
    assert peak < 64 * 1024, f"server grew {peak} KiB while the client read nothing"
    # Reading again gets everything, in order.
    count = 0
    while (event := await call.read()) is not grpc.aio.EOF:
        if event.HasField("custom"):
            assert json.loads(event.custom.json)["i"] == count
            count += 1
    assert count == 20_000


async def test_after_kill_9_a_run_still_queued_for_a_slot_is_waited_for_not_taken_for_over(tmp_path: Path) -> None:
    # One slot: after the restart the killed run takes it again, and the run that waited for it
    # stays queued, live nowhere yet. Waiting for it, or joining its stream, waits for it to run.
    db, one_slot = tmp_path / "gateway.sqlite", ("--max-concurrent-runs", "1")
    first = GatewayProcess(db, extra_args=one_slot).start()
    try:
        async with grpc.aio.insecure_channel(first.grpc_target) as channel:
            stubs = make_stubs(channel)
            busy_thread, queued_thread = await new_thread(stubs), await new_thread(stubs)
            run = await stubs.runs.CreateRun(create("slow", busy_thread, {"n": 30, "delay": 0.05}))
            queued = await stubs.runs.CreateRun(create("agent", queued_thread, {"topic": "z"}))
            await wait_status(stubs, busy_thread, run.run_id, runs_pb2.RUN_STATUS_RUNNING)
        first.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        first.proc.wait(10)  # type: ignore[union-attr]
    finally:
        first.kill()
    second = GatewayProcess(db, extra_args=one_slot).start()
    try:
        async with grpc.aio.insecure_channel(second.grpc_target) as channel:
            stubs = make_stubs(channel)
            joined, result = await asyncio.gather(
                join(stubs, queued_thread, queued.run_id, "0"),
                stubs.runs.JoinRun(runs_pb2.JoinRunRequest(thread_id=queued_thread, run_id=queued.run_id)),
            )
            assert joined[-1].end.status == runs_pb2.RUN_STATUS_SUCCESS
            assert any(e.HasField("values") for e in joined)
            assert result.run.status == runs_pb2.RUN_STATUS_SUCCESS
            assert json.loads(result.result_json)["joke"] == "This is a joke about z and cats"
            # The one before it ran first, to its end: the slot was its.
            done = await stubs.runs.GetRun(runs_pb2.GetRunRequest(thread_id=busy_thread, run_id=run.run_id))
            assert done.status == runs_pb2.RUN_STATUS_SUCCESS
    finally:
        second.kill()
