"""GET /metrics, scraped and parsed by prometheus-client's own parser before and after known
traffic on each edge: the counters move by what the traffic did, on both backends."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import grpc
import httpx
import pytest
from langgraph.gateway.v1 import runs_pb2
from prometheus_client.parser import text_string_to_metric_families

from tests._auth import ALICE, auth_gateway
from tests._server import GatewayProcess
from tests.conftest import Stubs, backend_args
from tests.http._bridge import BridgeProcess
from tests.rpc.test_run_stream import stream, value

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
RUNS = "langgraph.gateway.v1.RunsService"


def scrape(url: str) -> Samples:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return get(after, name, **labels) - get(before, name, **labels)


def _families(url: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)}


async def test_grpc_traffic_moves_its_counters(gateway: GatewayProcess, stubs: Stubs) -> None:
    before = scrape(gateway.http_url)
    # Events 10 ms apart: the stream writes them as they come, in batches of their own.
    events = await stream(stubs, assistant_id="slow", input=value({"n": 20, "delay": 0.01}), stream_mode=["custom"])
    assert len(events) == 22
    with pytest.raises(grpc.aio.AioRpcError):
        await stubs.runs.GetRun(runs_pb2.GetRunRequest(thread_id=str(_uuid()), run_id=str(_uuid())))
    after = scrape(gateway.http_url)

    assert moved(before, after, "langgraph_gateway_runs_created_total", graph="slow", edge="grpc") == 1
    finished = {"graph": "slow", "status": "success", "edge": "grpc"}
    assert moved(before, after, "langgraph_gateway_runs_finished_total", **finished) == 1
    delivered = "langgraph_gateway_events_delivered_total"
    assert moved(before, after, delivered, edge="grpc", mode="custom") == 20
    assert moved(before, after, delivered, edge="grpc", mode="metadata") == 1
    assert moved(before, after, delivered, edge="grpc", mode="end") == 1
    # Observed for a sample of the batches written live: the first, and one in 16 after it.
    observed = moved(before, after, "langgraph_gateway_event_delay_seconds_count", edge="grpc")
    assert 1 <= observed <= 2
    call = {"grpc_service": RUNS, "grpc_method": "RunStream", "grpc_type": "server_stream"}
    assert moved(before, after, "grpc_server_started_total", **call) == 1
    assert moved(before, after, "grpc_server_handled_total", **call, grpc_code="OK") == 1
    assert moved(before, after, "grpc_server_handling_seconds_count", **call) == 1
    get_run = {"grpc_service": RUNS, "grpc_method": "GetRun", "grpc_type": "unary"}
    assert moved(before, after, "grpc_server_handled_total", **get_run, grpc_code="NOT_FOUND") == 1
    # The stream is over: no stream is left open by it.
    assert moved(before, after, "langgraph_gateway_open_streams", edge="grpc", kind="run") == 0


async def test_http_traffic_moves_its_counters(gateway: GatewayProcess) -> None:
    before = scrape(gateway.http_url)
    async with httpx.AsyncClient(base_url=gateway.http_url, timeout=60) as http:
        body = {"assistant_id": "slow", "input": {"n": 10, "delay": 0.01}, "stream_mode": ["custom"]}
        async with http.stream("POST", "/runs/stream", json=body) as response:
            assert response.status_code == 200
            text = (await response.aread()).decode()
        assert text.count("event: custom") == 10
        assert (await http.get("/threads/not-a-uuid")).status_code == 422
        assert (await http.get("/nowhere")).status_code == 404
    after = scrape(gateway.http_url)

    assert moved(before, after, "langgraph_gateway_runs_created_total", graph="slow", edge="http") == 1
    finished = {"graph": "slow", "status": "success", "edge": "http"}
    assert moved(before, after, "langgraph_gateway_runs_finished_total", **finished) == 1
    assert moved(before, after, "langgraph_gateway_events_delivered_total", edge="http", mode="custom") == 10
    assert moved(before, after, "langgraph_gateway_event_delay_seconds_count", edge="http") >= 1
    requests = "langgraph_gateway_http_requests_total"
    assert moved(before, after, requests, method="POST", route="/runs/stream", status="200") == 1
    # By route template, not by path: a thread's id does not make a series of its own.
    assert moved(before, after, requests, method="GET", route="/threads/{thread_id}", status="422") == 1
    assert moved(before, after, requests, method="GET", route="unmatched", status="404") == 1
    seconds = "langgraph_gateway_http_request_duration_seconds_count"
    assert moved(before, after, seconds, method="POST", route="/runs/stream") == 1
    # Scrapes do not count themselves.
    assert moved(before, after, requests, method="GET", route="unmatched", status="200") == 0


async def test_runs_queued_and_running_and_open_streams(gateway: GatewayProcess, stubs: Stubs) -> None:
    async with httpx.AsyncClient(base_url=gateway.http_url, timeout=60) as http:
        thread_id = (await http.post("/threads", json={})).json()["thread_id"]
        before = scrape(gateway.http_url)
        request = runs_pb2.CreateRunRequest(
            assistant_id="slow",
            thread_id=thread_id,
            input=value({"n": 400, "delay": 0.02}),
            stream_mode=[runs_pb2.STREAM_MODE_CUSTOM],
        )
        call = stubs.runs.RunStream(request)
        await call.read()  # metadata: it runs
        # A second run on the busy thread waits in its queue.
        body = {"assistant_id": "agent", "input": {"topic": "x"}, "multitask_strategy": "enqueue"}
        queued = (await http.post(f"/threads/{thread_id}/runs", json=body)).json()
        during = scrape(gateway.http_url)
        assert get(during, "langgraph_gateway_runs_queued") >= 1
        assert get(during, "langgraph_gateway_runs_running") >= 1
        assert moved(before, during, "langgraph_gateway_open_streams", edge="grpc", kind="run") == 1
        call.cancel()
        await http.post(f"/threads/{thread_id}/runs/{queued['run_id']}/cancel")
    # The cancelled stream closes as its run ends, and the call counts as CANCELLED.
    cancelled = {
        "grpc_service": RUNS,
        "grpc_method": "RunStream",
        "grpc_type": "server_stream",
        "grpc_code": "CANCELLED",
    }
    for _ in range(100):
        after = scrape(gateway.http_url)
        if moved(before, after, "langgraph_gateway_open_streams", edge="grpc", kind="run") == 0:
            break
        await asyncio.sleep(0.1)
    assert moved(before, after, "langgraph_gateway_open_streams", edge="grpc", kind="run") == 0
    assert moved(before, after, "grpc_server_handled_total", **cancelled) == 1


def test_the_bridge_serves_its_own_http_metrics(gateway: GatewayProcess) -> None:
    bridge = BridgeProcess(gateway.grpc_target).start()
    try:
        gateway_before = scrape(gateway.http_url)
        before = scrape(bridge.http_url)
        body = {"assistant_id": "burst", "input": {"n": 5}, "stream_mode": ["custom"]}
        with httpx.Client(base_url=bridge.http_url, timeout=60) as http:
            assert http.post("/runs/wait", json=body).status_code == 200
            assert http.get("/ok", params={"check_db": "1"}).json() == {"ok": True, "services": {"gateway": "healthy"}}
        after = scrape(bridge.http_url)
        requests = "langgraph_gateway_http_requests_total"
        assert moved(before, after, requests, method="POST", route="/runs/wait", status="200") == 1
        # The bridge runs nothing itself; the gateway saw the run come in over gRPC.
        assert "langgraph_gateway_runs_created" not in _families(bridge.http_url)
        gateway_after = scrape(gateway.http_url)
        created = {"graph": "burst", "edge": "grpc"}
        assert moved(gateway_before, gateway_after, "langgraph_gateway_runs_created_total", **created) == 1
        gateway.proc.send_signal(19)  # type: ignore[union-attr]  # SIGSTOP: the gateway stops answering
        try:
            down = httpx.get(f"{bridge.http_url}/ok", params={"check_db": "1"}, timeout=30)
        finally:
            gateway.proc.send_signal(18)  # type: ignore[union-attr]  # SIGCONT
        assert down.status_code == 503 and down.json()["services"] == {"gateway": "unhealthy"}
    finally:
        bridge.kill()


def test_workers_report_each_others_counts(tmp_path: Path) -> None:
    """--workers N: whichever worker answers a scrape reports the sum over all of them."""
    with backend_args("postgres") as args:
        # The schema first, by one process: workers that create it together can deadlock in
        # Postgres (one waits for the schema lock inside a statement, which the other's
        # CREATE INDEX CONCURRENTLY then waits for), a fault of start-up, not of metrics.
        GatewayProcess(tmp_path / "unused.sqlite", extra_args=args).start().terminate()
        proc = GatewayProcess(tmp_path / "unused.sqlite", extra_args=(*args, "--workers", "2")).start()
        try:
            runs = 6
            body = {"assistant_id": "agent", "input": {"topic": "x"}}
            for _ in range(runs):
                # A connection each: the kernel spreads them over the workers.
                with httpx.Client(base_url=proc.http_url, timeout=60) as http:
                    assert http.post("/runs/wait", json=body).status_code == 200
            for _ in range(8):
                samples = scrape(proc.http_url)
                assert get(samples, "langgraph_gateway_runs_created_total", graph="agent", edge="http") == runs
                assert get(samples, "langgraph_gateway_runs_running") == 0
        finally:
            proc.kill()


def _uuid() -> str:
    return str(uuid.uuid4())


def _is_scrape(answer: httpx.Response) -> bool:
    return answer.status_code == 200 and "langgraph_gateway_http_requests_total" in answer.text


def test_with_the_api_key_metrics_need_it_but_not_on_the_metrics_port(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path / "db.sqlite", extra_args=("--api-key", "k3y", "--metrics-port", "0")).start()
    try:
        assert httpx.get(f"{proc.http_url}/ok").status_code == 200
        refused = httpx.get(f"{proc.http_url}/metrics")
        assert refused.status_code == 401 and refused.json() == {"detail": "Missing x-api-key header"}
        assert httpx.get(f"{proc.http_url}/metrics", headers={"x-api-key": "wrong"}).status_code == 401
        assert _is_scrape(httpx.get(f"{proc.http_url}/metrics", headers={"x-api-key": "k3y"}))
        # The port of its own, for a scraper on a private network: /metrics and /ok, open.
        private = f"http://127.0.0.1:{proc.ready['metrics_port']}"
        assert _is_scrape(httpx.get(f"{private}/metrics"))
        assert httpx.get(f"{private}/ok").json() == {"ok": True}
        assert httpx.post(f"{private}/threads/search", json={}).status_code == 404
    finally:
        proc.kill()


def test_with_custom_auth_metrics_need_a_caller(tmp_path: Path) -> None:
    proc, _ = auth_gateway(tmp_path)
    try:
        assert httpx.get(f"{proc.http_url}/metrics").status_code == 401
        assert _is_scrape(httpx.get(f"{proc.http_url}/metrics", headers=ALICE))
    finally:
        proc.kill()


def test_the_bridges_metrics_need_its_key_but_not_on_its_metrics_port(gateway: GatewayProcess) -> None:
    bridge = BridgeProcess(gateway.grpc_target, api_key="k3y", extra_args=("--metrics-port", "0")).start()
    try:
        assert httpx.get(f"{bridge.http_url}/metrics").status_code == 401
        assert _is_scrape(httpx.get(f"{bridge.http_url}/metrics", headers={"x-api-key": "k3y"}))
        private = f"http://127.0.0.1:{bridge.ready['metrics_port']}"
        assert _is_scrape(httpx.get(f"{private}/metrics"))
        assert httpx.get(f"{private}/ok", params={"check_db": "1"}).json() == {
            "ok": True,
            "services": {"gateway": "healthy"},
        }
    finally:
        bridge.kill()
