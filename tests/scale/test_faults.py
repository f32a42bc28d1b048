"""A gateway whose Postgres or Redis goes away while it serves: calls fail with UNAVAILABLE /
503 rather than hang or report an internal error, no run is dropped silently, and service
resumes when the backend is back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import grpc
import httpx
import pytest
from langgraph.gateway.v1 import runs_pb2, runs_pb2_grpc, threads_pb2, threads_pb2_grpc

from tests._backends import Switch, postgres_database, redis_prefix
from tests._server import GatewayProcess

T = TypeVar("T")


@pytest.fixture
def switched(tmp_path: Path) -> Iterator[tuple[GatewayProcess, Switch, Switch]]:
    """A gateway that reaches Postgres and Redis through switches the test can cut."""
    with postgres_database() as url, redis_prefix() as prefix:
        pg, rd = Switch(5432).start(), Switch(6379).start()
        database = url.replace("127.0.0.1:5432", f"127.0.0.1:{pg.port}")
        args = ("--database-url", database, "--redis-url", f"redis://127.0.0.1:{rd.port}/0", "--redis-prefix", prefix)
        proc = GatewayProcess(tmp_path / "unused.sqlite", extra_args=args).start()
        try:
            yield proc, pg, rd
        finally:
            proc.kill()
            pg.stop()
            rd.stop()


def _until(check: object, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("the gateway did not recover")


def test_postgres_lost_and_back(switched: tuple[GatewayProcess, Switch, Switch]) -> None:
    proc, pg, _ = switched
    with httpx.Client(base_url=proc.http_url, timeout=60) as http:
        thread_id = http.post("/threads", json={}).json()["thread_id"]
        body = {"assistant_id": "slow", "input": {"n": 150, "delay": 0.02}, "stream_mode": ["custom"]}
        run = http.post(f"/threads/{thread_id}/runs", json=body).json()
        time.sleep(0.5)
        pg.cut()
        answer = http.get(f"/threads/{thread_id}")
        assert answer.status_code == 503, answer.text
        assert "database" in answer.json()["detail"]
        assert http.post("/threads", json={}).status_code == 503
        pg.restore()
        _until(lambda: http.get(f"/threads/{thread_id}").status_code == 200)
        # The run that was running ended, and says how; nothing was left running.
        _until(lambda: http.get(f"/threads/{thread_id}/runs/{run['run_id']}").json()["status"] != "running")
        assert http.post("/runs/wait", json={"assistant_id": "agent", "input": {"topic": "z"}}).json()["joke"]
    assert not [line for line in proc.stderr_lines if "internal error" in line]


def test_redis_lost_and_back(switched: tuple[GatewayProcess, Switch, Switch]) -> None:
    proc, _, rd = switched
    with httpx.Client(base_url=proc.http_url, timeout=60) as http:
        thread_id = http.post("/threads", json={}).json()["thread_id"]
        body = {"assistant_id": "agent", "input": {"topic": "x"}, "stream_resumable": True}
        done = http.post(f"/threads/{thread_id}/runs/wait", json=body)
        assert done.status_code == 200
        run_id = http.get(f"/threads/{thread_id}/runs").json()[0]["run_id"]
        rd.cut()
        # Replaying a resumable run reads its log in Redis: refused, not hung.
        joined = http.get(f"/threads/{thread_id}/runs/{run_id}/stream", headers={"Last-Event-ID": "0"})
        assert joined.status_code == 503 or b"Unavailable" in joined.content, joined.text
        # Records need only Postgres.
        assert http.get(f"/threads/{thread_id}").status_code == 200
        rd.restore()
        _until(
            lambda: http.post("/runs/wait", json={"assistant_id": "agent", "input": {"topic": "y"}}).status_code == 200
        )
        replay = http.get(f"/threads/{thread_id}/runs/{run_id}/stream", headers={"Last-Event-ID": "0"})
        assert replay.status_code == 200 and b"event: values" in replay.content
    assert not [line for line in proc.stderr_lines if "internal error" in line]


def _unless_unavailable(call: Callable[[], T]) -> T | None:
    """What `call()` answers, or None while it fails with UNAVAILABLE (a backend still away);
    any other failure fails the test."""
    try:
        return call()
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.UNAVAILABLE, err
        return None


def _code(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as err:
        return err.code(), err.details() or ""
    raise AssertionError("the call succeeded")


def test_postgres_lost_and_back_over_grpc(switched: tuple[GatewayProcess, Switch, Switch]) -> None:
    proc, pg, _ = switched
    with grpc.insecure_channel(proc.grpc_target) as channel:
        threads, runs = threads_pb2_grpc.ThreadsServiceStub(channel), runs_pb2_grpc.RunsServiceStub(channel)
        thread_id = threads.CreateThread(threads_pb2.CreateThreadRequest()).thread_id
        pg.cut()
        code, details = _code(lambda: threads.GetThread(threads_pb2.GetThreadRequest(thread_id=thread_id), timeout=30))
        assert code == grpc.StatusCode.UNAVAILABLE and "database" in details, details
        assert _code(lambda: threads.CreateThread(threads_pb2.CreateThreadRequest(), timeout=30))[0] == (
            grpc.StatusCode.UNAVAILABLE
        )
        stateless = runs_pb2.CreateRunRequest(assistant_id="agent", stream_mode=[runs_pb2.STREAM_MODE_VALUES])
        stateless.input.struct_value.update({"topic": "x"})
        code, details = _code(lambda: list(runs.RunStreamBatch(stateless, timeout=30)))
        assert code == grpc.StatusCode.UNAVAILABLE, details
        pg.restore()
        _until(
            lambda: (
                _unless_unavailable(
                    lambda: threads.GetThread(threads_pb2.GetThreadRequest(thread_id=thread_id), timeout=10)
                )
                is not None
            )
        )
        ends = [e.end for m in runs.RunStreamBatch(stateless, timeout=60) for e in m.events if e.HasField("end")]
        assert [e.status for e in ends] == [runs_pb2.RUN_STATUS_SUCCESS]
    assert not [line for line in proc.stderr_lines if "internal error" in line]


def test_redis_lost_and_back_over_grpc(switched: tuple[GatewayProcess, Switch, Switch]) -> None:
    proc, _, rd = switched
    with grpc.insecure_channel(proc.grpc_target) as channel:
        threads, runs = threads_pb2_grpc.ThreadsServiceStub(channel), runs_pb2_grpc.RunsServiceStub(channel)
        thread_id = threads.CreateThread(threads_pb2.CreateThreadRequest()).thread_id
        request = runs_pb2.CreateRunRequest(
            assistant_id="agent", thread_id=thread_id, stream_mode=[runs_pb2.STREAM_MODE_VALUES], stream_resumable=True
        )
        request.input.struct_value.update({"topic": "x"})
        run_id = runs.WaitRun(request, timeout=60).run.run_id
        rd.cut()
        join = runs_pb2.JoinRunStreamRequest(thread_id=thread_id, run_id=run_id, last_event_id="0")
        # Replaying a resumable run reads its log in Redis: refused, not hung.
        code, details = _code(lambda: list(runs.JoinRunStreamBatch(join, timeout=30)))
        assert code == grpc.StatusCode.UNAVAILABLE, details
        # Records need only Postgres.
        assert threads.GetThread(threads_pb2.GetThreadRequest(thread_id=thread_id), timeout=30).thread_id == thread_id
        rd.restore()
        _until(
            lambda: any(
                e.HasField("values")
                for m in _unless_unavailable(lambda: list(runs.JoinRunStreamBatch(join, timeout=10))) or []
                for e in m.events
            )
        )
    assert not [line for line in proc.stderr_lines if "internal error" in line]
