"""Idempotent creation across replicas on one Postgres database and one Redis: a request_id
stored by one replica is found by every other, and repeats racing on two replicas make one
run or thread."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from uuid import uuid4

import grpc
from langgraph.gateway.v1 import runs_pb2, threads_pb2

from tests.conftest import make_stubs
from tests.rpc.test_runs import create
from tests.scale.conftest import Replica


async def test_a_request_id_holds_across_replicas(replica: Replica) -> None:
    a, b = replica(), replica()
    async with grpc.aio.insecure_channel(a.grpc_target) as ca, grpc.aio.insecure_channel(b.grpc_target) as cb:
        sa, sb = make_stubs(ca), make_stubs(cb)
        thread_request = threads_pb2.CreateThreadRequest(request_id=str(uuid4()))
        thread = await sa.threads.CreateThread(thread_request)
        assert (await sb.threads.CreateThread(thread_request)).thread_id == thread.thread_id
        # Created on one, repeated on the other.
        request = create("agent", thread.thread_id, {"topic": "x"}, request_id=str(uuid4()))
        first = await sa.runs.CreateRun(request)
        assert (await sb.runs.CreateRun(request)).run_id == first.run_id
        waited = await sb.runs.WaitRun(request)
        assert waited.run.run_id == first.run_id and json.loads(waited.result_json)["joke"].startswith("This is")
        # Streamed on one; the repeat on the other follows the same run from its start.
        streamed = create(
            "slow",
            thread.thread_id,
            {"n": 8, "delay": 0.05},
            stream_mode=["custom"],
            stream_resumable=True,
            request_id=str(uuid4()),
        )
        events, repeat = await asyncio.gather(
            _collect(lambda: sa.runs.RunStream(streamed)), _collect(lambda: sb.runs.RunStream(streamed), delay=0.2)
        )
        assert repeat[0].metadata.run_id == events[0].metadata.run_id
        assert [e.event_id for e in repeat] == [e.event_id for e in events]
        assert [json.loads(e.custom.json)["tick"] for e in events if e.custom.json] == list(range(8))
        # Repeats racing on both replicas: one run.
        raced = create("agent", thread.thread_id, {"topic": "y"}, request_id=str(uuid4()))
        made = await asyncio.gather(*(stubs.runs.CreateRun(raced) for stubs in (sa, sb) * 6))
        assert len({run.run_id for run in made}) == 1
        listed = await sb.runs.ListRuns(runs_pb2.ListRunsRequest(thread_id=thread.thread_id, limit=100))
        assert len(listed.runs) == 3
        raced_thread = threads_pb2.CreateThreadRequest(request_id=str(uuid4()))
        threads = await asyncio.gather(*(stubs.threads.CreateThread(raced_thread) for stubs in (sa, sb) * 6))
        assert len({t.thread_id for t in threads}) == 1
    # Both replicas killed (SIGKILL), a new one on the same database: the ids hold.
    a.kill()
    b.kill()
    async with grpc.aio.insecure_channel(replica().grpc_target) as channel:
        stubs = make_stubs(channel)
        assert (await stubs.runs.CreateRun(request)).run_id == first.run_id
        assert (await stubs.threads.CreateThread(thread_request)).thread_id == thread.thread_id


async def _collect(
    call: Callable[[], grpc.aio.UnaryStreamCall[runs_pb2.CreateRunRequest, runs_pb2.RunEvent]], delay: float = 0
) -> list[runs_pb2.RunEvent]:
    await asyncio.sleep(delay)
    return [event async for event in call()]
