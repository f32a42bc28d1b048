"""grpc.health.v1.Health/Watch, and gRPC's client-side health checking (gRFC A17) through it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from langgraph.gateway.v1 import threads_pb2

from gateway.rpc.health import HealthServicer
from gateway.rpc.server import SERVICE_NAMES
from tests._server import GatewayProcess
from tests.conftest import make_stubs
from tests.rpc.test_web import envelope, envelopes

Status = health_pb2.HealthCheckResponse
# What a client that balances over replicas and drops the ones that are not SERVING sets.
HEALTH_CHECKED = json.dumps({"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}})


async def test_watch_answers_serving_then_not_serving_on_drain_and_ends_with_the_server(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path / "db.sqlite").start()  # --grace 3
    try:
        async with grpc.aio.insecure_channel(proc.grpc_target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            services = ("", *SERVICE_NAMES)
            watches = [health.Watch(health_pb2.HealthCheckRequest(service=name)) for name in services]
            unknown = health.Watch(health_pb2.HealthCheckRequest(service="no.such.Service"))
            for watch in watches:
                assert (await asyncio.wait_for(watch.read(), 30)).status == Status.SERVING
            assert (await asyncio.wait_for(unknown.read(), 30)).status == Status.SERVICE_UNKNOWN
            unknown.cancel()

            proc.proc.send_signal(15)  # type: ignore[union-attr]
            for name, watch in zip(services, watches, strict=True):
                assert (await asyncio.wait_for(watch.read(), 30)).status == Status.NOT_SERVING, name
            for watch in watches:
                assert await asyncio.wait_for(watch.read(), 30) is grpc.aio.EOF
                assert await watch.code() == grpc.StatusCode.OK
        assert proc.proc.wait(30) == 0  # type: ignore[union-attr]
    finally:
        proc.kill()


async def test_a_watch_whose_last_message_is_on_its_way_as_the_server_drains_and_stops_says_not_serving() -> None:
    # The handler, not the server: the edge hands its messages to another loop, so a watch may
    # resume after its SERVING only once the server has started to drain and closed the watches.
    health = HealthServicer()
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""), None)
    assert (await anext(watch)).status == Status.SERVING
    health.enter_graceful_shutdown()
    health.close()
    assert (await anext(watch)).status == Status.NOT_SERVING
    assert await anext(watch, None) is None
    await asyncio.wait_for(health.ended(), 1)


async def test_client_side_health_checking_lets_calls_through(gateway: GatewayProcess) -> None:
    options = [("grpc.service_config", HEALTH_CHECKED), ("grpc.enable_retries", 0)]
    async with grpc.aio.insecure_channel(gateway.grpc_target, options=options) as channel:
        stubs = make_stubs(channel)
        for _ in range(3):
            thread = await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest(), timeout=30)
            got = await stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=thread.thread_id), timeout=30)
            assert got.thread_id == thread.thread_id
        assert channel.get_state() == grpc.ChannelConnectivity.READY


async def test_watch_over_connect_on_the_http_port(gateway: GatewayProcess) -> None:
    # The same servicer behind the HTTP port: SERVING at once, then the deadline ends the watch.
    async with httpx.AsyncClient(base_url=gateway.http_url, timeout=30) as http:
        reply = await http.post(
            "/grpc.health.v1.Health/Watch",
            content=envelope(json.dumps({"service": ""}).encode()),
            headers={"content-type": "application/connect+json", "connect-timeout-ms": "1000"},
        )
    (first_flags, first), (end_flags, end) = envelopes(reply.content)
    assert (first_flags, json.loads(first)) == (0, {"status": "SERVING"})
    assert end_flags == 2 and json.loads(end)["error"]["code"] == "deadline_exceeded"
