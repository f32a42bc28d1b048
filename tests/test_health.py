"""Health for load balancers and orchestrators: `/ok` for liveness, `/ok?check_db=1` for
readiness (each backend asked to answer), gRPC health per service, and both turning away
traffic while the gateway drains."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.rpc.server import SERVICE_NAMES
from tests._backends import Switch, postgres_database, redis_prefix
from tests._server import GatewayProcess

SERVING = health_pb2.HealthCheckResponse.SERVING


def test_a_deep_check_asks_each_backend(gateway: GatewayProcess) -> None:
    with httpx.Client(base_url=gateway.http_url, timeout=30) as http:
        assert http.get("/ok").json() == {"ok": True}
        deep = http.get("/ok", params={"check_db": "1"})
    assert deep.status_code == 200
    postgres = "--database-url" in gateway.extra_args
    expected = {"database": "healthy", "redis": "healthy"} if postgres else {"database": "healthy"}
    assert deep.json() == {"ok": True, "services": expected}


async def test_grpc_health_per_service(gateway: GatewayProcess) -> None:
    async with grpc.aio.insecure_channel(gateway.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", *SERVICE_NAMES):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == SERVING, service
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.fixture
def behind_a_switch(tmp_path: Path) -> Iterator[tuple[GatewayProcess, Switch]]:
    """A gateway on Postgres (and Redis), reaching Postgres through a switch the test can cut."""
    with postgres_database() as url, redis_prefix() as prefix:
        switch = Switch(5432).start()
        database = url.replace("127.0.0.1:5432", f"127.0.0.1:{switch.port}")
        args = ("--database-url", database, "--redis-url", "redis://127.0.0.1:6379/0", "--redis-prefix", prefix)
        proc = GatewayProcess(tmp_path / "unused.sqlite", extra_args=args).start()
        try:
            yield proc, switch
        finally:
            proc.kill()
            switch.stop()


def test_the_deep_check_fails_while_postgres_is_unreachable(behind_a_switch: tuple[GatewayProcess, Switch]) -> None:
    proc, switch = behind_a_switch
    with httpx.Client(base_url=proc.http_url, timeout=30) as http:
        assert http.get("/ok", params={"check_db": "1"}).status_code == 200
        switch.cut()
        down = http.get("/ok", params={"check_db": "1"})
        assert down.status_code == 503
        assert down.json() == {"ok": False, "services": {"database": "unhealthy", "redis": "healthy"}}
        # Liveness does not depend on the backends: the process is up.
        assert http.get("/ok").status_code == 200
        switch.restore()
        deadline = time.monotonic() + 30
        while (back := http.get("/ok", params={"check_db": "1"})).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert back.json() == {"ok": True, "services": {"database": "healthy", "redis": "healthy"}}


async def test_readiness_fails_while_draining(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path / "db.sqlite").start()  # --grace 3
    try:
        async with httpx.AsyncClient(base_url=proc.http_url, timeout=30) as http:
            body = {"assistant_id": "slow", "input": {"n": 1000, "delay": 0.02}, "stream_mode": ["custom"]}
            assert (await http.post("/runs", json=body)).status_code == 200
            proc.proc.send_signal(15)  # type: ignore[union-attr]
            await asyncio.sleep(0.5)
            draining = await http.get("/ok", params={"check_db": "1"})
            assert draining.status_code == 503
            assert draining.json() == {"ok": False, "services": {"database": "healthy"}, "draining": True}
            assert (await http.get("/ok")).status_code == 200
        async with grpc.aio.insecure_channel(proc.grpc_target) as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAMES[0])
            )
            assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert proc.proc.wait(30) == 0  # type: ignore[union-attr]
    finally:
        proc.kill()


def test_a_metrics_port_for_a_grpc_only_gateway(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path / "db.sqlite", extra_args=("--http-port", "-1", "--metrics-port", "0")).start()
    try:
        assert proc.http_port == -1
        url = f"http://127.0.0.1:{proc.ready['metrics_port']}"
        assert httpx.get(f"{url}/ok", params={"check_db": "1"}).json() == {
            "ok": True,
            "services": {"database": "healthy"},
        }
        assert "langgraph_gateway_runs_running" in httpx.get(f"{url}/metrics").text
    finally:
        proc.kill()
