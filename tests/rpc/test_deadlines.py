"""A client deadline ends RunStream, RunStreamBatch, WaitRun and JoinRunStream with
DEADLINE_EXCEEDED; the run then follows its `on_disconnect` (a join: `cancel_on_disconnect`),
as when the client goes away."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from langgraph.gateway.v1 import runs_pb2, threads_pb2

from tests.conftest import Stubs


async def _slow_run(stubs: Stubs, on_disconnect: int) -> runs_pb2.CreateRunRequest:
    thread = await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest())
    request = runs_pb2.CreateRunRequest(
        assistant_id="slow",
        thread_id=thread.thread_id,
        stream_mode=[runs_pb2.STREAM_MODE_CUSTOM],
        on_disconnect=on_disconnect,  # type: ignore[arg-type]
    )
    request.input.struct_value.update({"n": 30, "delay": 0.05})
    return request


async def _settled(stubs: Stubs, thread_id: str) -> list[int]:
    """The thread's runs' statuses once none is pending or running."""
    for _ in range(200):
        runs = (await stubs.runs.ListRuns(runs_pb2.ListRunsRequest(thread_id=thread_id))).runs
        statuses = [r.status for r in runs]
        if statuses and all(s not in (runs_pb2.RUN_STATUS_PENDING, runs_pb2.RUN_STATUS_RUNNING) for s in statuses):
            return statuses
        await asyncio.sleep(0.05)
    raise AssertionError(f"the runs of {thread_id} never settled: {statuses}")


async def _exceeded(call: object) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        if hasattr(call, "__aiter__"):
            async for _ in call:  # type: ignore[attr-defined]
                pass
        else:
            await call  # type: ignore[misc]
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


@pytest.mark.parametrize(
    ("on_disconnect", "outcome"),
    [
        (runs_pb2.ON_DISCONNECT_CANCEL, runs_pb2.RUN_STATUS_INTERRUPTED),
        (runs_pb2.ON_DISCONNECT_CONTINUE, runs_pb2.RUN_STATUS_SUCCESS),
    ],
)
@pytest.mark.parametrize("rpc", ["RunStream", "RunStreamBatch", "WaitRun"])
async def test_a_deadline_ends_the_call_and_the_run_follows_on_disconnect(
    stubs: Stubs, rpc: str, on_disconnect: int, outcome: int
) -> None:
    request = await _slow_run(stubs, on_disconnect)
    await _exceeded(getattr(stubs.runs, rpc)(request, timeout=0.5))
    assert await _settled(stubs, request.thread_id) == [outcome]


@pytest.mark.parametrize(
    ("cancel_on_disconnect", "outcome"), [(True, runs_pb2.RUN_STATUS_INTERRUPTED), (False, runs_pb2.RUN_STATUS_SUCCESS)]
)
async def test_a_deadline_ends_a_join(stubs: Stubs, cancel_on_disconnect: bool, outcome: int) -> None:
    request = await _slow_run(stubs, runs_pb2.ON_DISCONNECT_CONTINUE)
    run = await stubs.runs.CreateRun(request)
    join = runs_pb2.JoinRunStreamRequest(
        thread_id=run.thread_id, run_id=run.run_id, cancel_on_disconnect=cancel_on_disconnect
    )
    await _exceeded(stubs.runs.JoinRunStream(join, timeout=0.5))
    assert await _settled(stubs, run.thread_id) == [outcome]
