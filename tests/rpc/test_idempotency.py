"""Idempotent creation over gRPC (AIP-155): a repeat of CreateRun, RunStream, RunStreamBatch,
WaitRun or CreateThread with the same request_id gets what the first call made, on each
backend, across a restart of the gateway, and when the repeats race."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path
from uuid import uuid4

import grpc
import pytest
from google.protobuf import struct_pb2
from langgraph.gateway.v1 import runs_pb2, threads_pb2

from tests._auth import ALICE, BOB, auth_gateway
from tests.conftest import BACKENDS, Stubs, backend_args, make_stubs, own_gateway
from tests.rpc.test_run_stream import new_thread
from tests.rpc.test_runs import create


def metadata(**fields: object) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(fields)
    return struct


async def runs_of(stubs: Stubs, thread_id: str) -> list[str]:
    listed = await stubs.runs.ListRuns(runs_pb2.ListRunsRequest(thread_id=thread_id, limit=100))
    return [r.run_id for r in listed.runs]


async def test_a_repeated_create_run_returns_the_first_run(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    request = create("agent", thread_id, {"topic": "cats"}, request_id=str(uuid4()))
    first = await stubs.runs.CreateRun(request)
    again = await stubs.runs.CreateRun(request)
    assert again.run_id == first.run_id and again.thread_id == thread_id
    assert await runs_of(stubs, thread_id) == [first.run_id]
    # The same id on the other run-creating RPCs is a repeat too: they share the request.
    waited = await stubs.runs.WaitRun(request)
    assert waited.run.run_id == first.run_id
    assert json.loads(waited.result_json)["joke"] == "This is a joke about cats and cats"
    assert await runs_of(stubs, thread_id) == [first.run_id]


async def test_a_request_id_with_another_body_or_not_a_uuid_is_refused(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    request_id = str(uuid4())
    first = await stubs.runs.CreateRun(create("agent", thread_id, {"topic": "a"}, request_id=request_id))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.runs.CreateRun(create("agent", thread_id, {"topic": "b"}, request_id=request_id))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert f"request_id {request_id}" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest(request_id=request_id))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert await runs_of(stubs, thread_id) == [first.run_id]
    for rpc in (stubs.runs.CreateRun, stubs.runs.WaitRun):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await rpc(create("agent", thread_id, {"topic": "a"}, request_id="not-a-uuid"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "request_id 'not-a-uuid' is not a UUID" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest(request_id="x"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in (err.value.details() or "")
    assert await runs_of(stubs, thread_id) == [first.run_id]


async def test_a_repeated_create_thread_returns_the_first_thread(stubs: Stubs) -> None:
    request = threads_pb2.CreateThreadRequest(metadata=metadata(owner="ann"), request_id=str(uuid4()))
    first = await stubs.threads.CreateThread(request)
    again = await stubs.threads.CreateThread(request)
    assert again.thread_id == first.thread_id and dict(again.metadata) == {"owner": "ann"}
    counted = await stubs.threads.CountThreads(threads_pb2.CountThreadsRequest(metadata=metadata(owner="ann")))
    assert counted.count >= 1
    searched = await stubs.threads.SearchThreads(
        threads_pb2.SearchThreadsRequest(metadata=metadata(owner="ann"), limit=100)
    )
    assert [t.thread_id for t in searched.threads].count(first.thread_id) == 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.threads.CreateThread(
            threads_pb2.CreateThreadRequest(metadata=metadata(owner="bob"), request_id=request.request_id)
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "request_id" in (err.value.details() or "")


@pytest.mark.parametrize("stateless", [False, True])
async def test_a_repeated_run_stream_follows_the_first_run_from_its_start(stubs: Stubs, stateless: bool) -> None:
    thread_id = "" if stateless else await new_thread(stubs)
    request = create(
        "slow",
        thread_id,
        {"n": 10, "delay": 0.05},
        stream_mode=["custom", "values"],
        stream_resumable=True,
        request_id=str(uuid4()),
    )
    first_stream = stubs.runs.RunStream(request)
    first = [await first_stream.read() for _ in range(3)]
    # Repeated while the first call still streams, and again after.
    repeat = [e async for e in stubs.runs.RunStream(request)]
    events = first
    while (event := await first_stream.read()) is not grpc.aio.EOF:
        assert isinstance(event, runs_pb2.RunEvent)
        events.append(event)
    run_id = events[0].metadata.run_id
    assert repeat[0].metadata.run_id == run_id
    ticks = [json.loads(e.custom.json)["tick"] for e in events if e.WhichOneof("event") == "custom"]
    assert ticks == list(range(10))
    assert [e.event_id for e in repeat] == [e.event_id for e in events]
    assert repeat[-1].end.status == runs_pb2.RUN_STATUS_SUCCESS
    batched = [e async for b in stubs.runs.RunStreamBatch(request) for e in b.events]
    assert [e.event_id for e in batched] == [e.event_id for e in events]
    if not stateless:
        assert await runs_of(stubs, thread_id) == [run_id]


async def test_concurrent_repeats_create_one_run(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    request = create("agent", thread_id, {"topic": "x"}, request_id=str(uuid4()))
    made = await asyncio.gather(*(stubs.runs.CreateRun(request) for _ in range(10)))
    assert len({run.run_id for run in made}) == 1
    assert await runs_of(stubs, thread_id) == [made[0].run_id]
    thread_request = threads_pb2.CreateThreadRequest(request_id=str(uuid4()))
    threads = await asyncio.gather(*(stubs.threads.CreateThread(thread_request) for _ in range(10)))
    assert len({t.thread_id for t in threads}) == 1


async def test_a_repeat_after_a_restart_gets_the_run_made_before_it(db_path: Path) -> None:
    request = create("agent", "", {"topic": "dogs"}, keep_thread=True, request_id=str(uuid4()))
    thread_request = threads_pb2.CreateThreadRequest(request_id=str(uuid4()))
    async with own_gateway(db_path) as stubs:
        first = await stubs.runs.CreateRun(request)
        thread = await stubs.threads.CreateThread(thread_request)
    # own_gateway ends its process with SIGKILL: nothing is flushed at exit.
    async with own_gateway(db_path) as stubs:
        again = await stubs.runs.CreateRun(request)
        assert (again.run_id, again.thread_id) == (first.run_id, first.thread_id)
        waited = await stubs.runs.WaitRun(request)
        assert waited.run.run_id == first.run_id
        assert json.loads(waited.result_json).get("joke") == "This is a joke about dogs and cats", waited
        assert await runs_of(stubs, first.thread_id) == [first.run_id]
        assert (await stubs.threads.CreateThread(thread_request)).thread_id == thread.thread_id


async def test_request_ids_are_forgotten_after_the_window(db_path: Path) -> None:
    request = create("agent", "", {"topic": "dogs"}, keep_thread=True, request_id=str(uuid4()))
    async with own_gateway(db_path, "--idempotency-window", "0.5", "--event-retention", "1") as stubs:
        first = await stubs.runs.CreateRun(request)
        assert _stored_keys(db_path) == 1
        # The pruning loop runs every tenth of --event-retention.
        for _ in range(100):
            await asyncio.sleep(0.1)
            if _stored_keys(db_path) == 0:
                break
        assert _stored_keys(db_path) == 0
        again = await stubs.runs.CreateRun(request)
        assert again.run_id != first.run_id


def _stored_keys(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM gw_request_keys").fetchone()[0])


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_request_id_is_each_callers_own(tmp_path: Path, backend: str) -> None:
    alice, bob = tuple(ALICE.items()), tuple(BOB.items())
    with backend_args(backend) as args:
        proc, _ = auth_gateway(tmp_path, *args)
        try:
            async with grpc.aio.insecure_channel(proc.grpc_target) as channel:
                stubs = make_stubs(channel)
                thread_request = threads_pb2.CreateThreadRequest(request_id=str(uuid4()))
                mine = await stubs.threads.CreateThread(thread_request, metadata=alice)
                theirs = await stubs.threads.CreateThread(thread_request, metadata=bob)
                assert theirs.thread_id != mine.thread_id
                assert (await stubs.threads.CreateThread(thread_request, metadata=alice)).thread_id == mine.thread_id
                request = create("whoami", mine.thread_id, {}, request_id=str(uuid4()))
                run = await stubs.runs.CreateRun(request, metadata=alice)
                assert (await stubs.runs.CreateRun(request, metadata=alice)).run_id == run.run_id
                # Bob's repeat of Alice's request is a request of his own: her thread is not his.
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stubs.runs.CreateRun(request, metadata=bob)
                assert err.value.code() == grpc.StatusCode.NOT_FOUND
        finally:
            proc.kill()
