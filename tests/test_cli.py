"""The serve command as a process: config errors, API keys, and draining on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from langgraph.gateway.v1 import runs_pb2, threads_pb2

from tests._server import ROOT, GatewayProcess
from tests.conftest import make_stubs, own_gateway
from tests.rpc.test_run_stream import stream, value


def test_a_broken_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"g": "./missing.py:graph"}}))
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--db", str(tmp_path / "db")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "graphs.g" in result.stderr and "Traceback" not in result.stderr


def test_a_stall_timeout_must_be_positive(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--stall-timeout", "0", "--db", str(tmp_path / "db")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "--stall-timeout must be positive" in result.stderr and "Traceback" not in result.stderr


async def test_serves_on_asyncios_own_loop_as_on_uvloop(tmp_path: Path) -> None:
    # The shared gateway runs on uvloop (the default where installed); this one on asyncio's.
    async with own_gateway(tmp_path / "db.sqlite", "--loop", "asyncio") as stubs:
        events = await stream(stubs, assistant_id="burst", input=value({"n": 50}), stream_mode=["custom"])
    assert [e.WhichOneof("event") for e in events] == ["metadata"] + ["custom"] * 50 + ["end"]
    assert events[-1].end.status == runs_pb2.RUN_STATUS_SUCCESS


async def test_api_key_is_required_on_every_rpc_but_health(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path / "db.sqlite", extra_args=("--api-key", "s3cret")).start()
    try:
        async with grpc.aio.insecure_channel(proc.grpc_target) as channel:
            stubs = make_stubs(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest())
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "x-api-key" in err.value.details()
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest(), metadata=(("x-api-key", "wrong"),))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stubs.runs.RunStream(runs_pb2.CreateRunRequest(assistant_id="agent")):
                    pass
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            thread = await stubs.threads.CreateThread(
                threads_pb2.CreateThreadRequest(), metadata=(("x-api-key", "s3cret"),)
            )
            assert thread.thread_id
            health = health_pb2_grpc.HealthStub(channel)
            status = await health.Check(health_pb2.HealthCheckRequest())
            assert status.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        proc.kill()


async def test_sigterm_drains_live_runs_then_interrupts_them(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path / "db.sqlite").start()  # --grace 3
    try:
        async with grpc.aio.insecure_channel(proc.grpc_target) as channel:
            stubs = make_stubs(channel)
            health = health_pb2_grpc.HealthStub(channel)
            thread = await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest())
            request = runs_pb2.CreateRunRequest(
                assistant_id="slow",
                thread_id=thread.thread_id,
                input=value({"n": 1000, "delay": 0.02}),
                stream_mode=[runs_pb2.STREAM_MODE_CUSTOM],
            )
            call = stubs.runs.RunStream(request)
            first = await call.read()
            run_id = first.metadata.run_id
            await call.read()
            proc.proc.send_signal(15)  # type: ignore[union-attr]
            await asyncio.sleep(0.5)
            status = await health.Check(health_pb2.HealthCheckRequest())
            assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stubs.runs.RunStream(runs_pb2.CreateRunRequest(assistant_id="agent")):
                    pass
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            events = []
            while (event := await call.read()) is not grpc.aio.EOF:
                events.append(event)
            # The run outlived the grace period: it was interrupted and its stream ended cleanly.
            assert events[-1].end.status == runs_pb2.RUN_STATUS_INTERRUPTED
        assert proc.proc.wait(30) == 0  # type: ignore[union-attr]
    finally:
        proc.kill()
    restarted = GatewayProcess(tmp_path / "db.sqlite").start()
    try:
        async with grpc.aio.insecure_channel(restarted.grpc_target) as channel:
            stubs = make_stubs(channel)
            run = await stubs.runs.GetRun(runs_pb2.GetRunRequest(thread_id=thread.thread_id, run_id=run_id))
            assert run.status == runs_pb2.RUN_STATUS_INTERRUPTED
            stored = await stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=thread.thread_id))
            assert stored.status == threads_pb2.THREAD_STATUS_INTERRUPTED
    finally:
        restarted.kill()


async def test_a_stream_lingers_for_more_events_but_not_past_the_runs_end(tmp_path: Path) -> None:
    # Ten events 10 ms apart, on a server whose streams wait up to a second for more after each
    # message: the first message goes at once, the rest come together when the run ends.
    async with own_gateway(tmp_path / "db.sqlite", "--stream-linger-ms", "1000") as stubs:
        request = runs_pb2.CreateRunRequest(
            assistant_id="slow", input=value({"n": 10, "delay": 0.01}), stream_mode=[runs_pb2.STREAM_MODE_CUSTOM]
        )
        messages = [list(m.events) async for m in stubs.runs.RunStreamBatch(request)]
    events = [e for m in messages for e in m]
    assert [e.WhichOneof("event") for e in events] == ["metadata"] + ["custom"] * 10 + ["end"]
    assert [json.loads(e.custom.json)["tick"] for e in events[1:-1]] == list(range(10))
    assert events[-1].end.status == runs_pb2.RUN_STATUS_SUCCESS
    assert messages[0][0].WhichOneof("event") == "metadata"
    assert len(messages) <= 3, [len(m) for m in messages]
