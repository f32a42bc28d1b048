"""Subscribers of a thread's protocol SSE stream that leave, or stay and stop reading: one that
leaves takes its subscription off the thread with it, and none holds the thread's runs back for
longer than the stall timeout (here 2 s), after which it follows the thread no more."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from tests._server import GatewayProcess
from tests.conftest import BACKENDS, backend_args
from tests.http._sse import aiter_events
from tests.protocol.conftest import PROTOCOL_CONFIG
from tests.test_metrics import Samples, get, scrape

TIMEOUT = 60
ALL = ["values", "updates", "messages", "tools", "lifecycle", "input", "checkpoints", "tasks", "custom"]
SUBSCRIPTIONS = "langgraph_gateway_protocol_subscriptions"
SESSIONS = "langgraph_gateway_open_streams"
DROPPED = "langgraph_gateway_slow_subscribers_dropped_total"


@pytest.fixture(scope="module", params=BACKENDS)
def gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    db = Path(tmp_path_factory.mktemp("subscribers")) / "gateway.sqlite"
    with backend_args(request.param) as args:
        proc = GatewayProcess(db, config=PROTOCOL_CONFIG, extra_args=("--stall-timeout", "2", *args)).start()
        yield proc
        proc.kill()


async def _settled(url: str, subscriptions: float) -> Samples:
    """The metrics once the thread protocol's subscriptions are down to `subscriptions`."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            samples = await asyncio.to_thread(scrape, url)
            if get(samples, SUBSCRIPTIONS) == subscriptions:
                return samples
            await asyncio.sleep(0.1)


async def _heavy_run(client: Any, thread_id: str) -> dict[str, Any]:
    """A run without a log whose events fill any ring a reader leaves unread (4,096 events)."""
    run = await client.runs.create(thread_id, "paced", input={"n": 6000, "pad": 2000}, stream_mode=["custom", "values"])
    await asyncio.wait_for(client.runs.join(thread_id, run["run_id"]), TIMEOUT)
    return await client.runs.get(thread_id, run["run_id"])


async def test_sse_subscribers_that_leave_leave_the_thread(gateway: GatewayProcess) -> None:
    url = gateway.http_url
    client = get_client(url=url)
    thread_id = (await client.threads.create())["thread_id"]
    before = await _settled(url, 0)
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
        for _ in range(40):
            # Subscribed, then gone before any event came: the client closes the connection.
            async with http.stream("POST", f"/threads/{thread_id}/stream/events", json={"channels": ALL}) as events:
                assert events.status_code == 200
    for _ in range(10):
        # The SDK's own SSE transport, closed by its `async with` once the run is over.
        async with client.threads.stream(thread_id, assistant_id="custom", transport="sse") as thread:
            await thread.run.start(input={"query": "q"})
            assert (await asyncio.wait_for(thread.output, TIMEOUT))["answer"] == "some data"
    settled = await _settled(url, 0)
    assert get(settled, SESSIONS, edge="http", kind="session") == 0
    # Had any of them stayed on the thread, this run would fill its queue and be held back.
    run = await _heavy_run(client, thread_id)
    assert run["status"] == "success"
    after = await _settled(url, 0)
    assert get(after, DROPPED) == get(before, DROPPED)


async def test_subscribers_that_leave_as_a_run_is_admitted_leave_the_thread(gateway: GatewayProcess) -> None:
    # A run's admission wakes every stream on its thread; a client that left at that moment had
    # its stream's cancel lost on Postgres + Redis (Python 3.11's wait_for), and the stream
    # stayed. Here 30 leave one after another while a run is created, five times over.
    url = gateway.http_url
    client = get_client(url=url)
    body = {"channels": ["values", "lifecycle"]}
    for _ in range(5):
        thread_id = (await client.threads.create())["thread_id"]
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT, limits=httpx.Limits(max_connections=64)) as http:
            streams = [http.stream("POST", f"/threads/{thread_id}/stream/events", json=body) for _ in range(30)]
            for stream in streams:
                assert (await stream.__aenter__()).status_code == 200
            created = asyncio.create_task(client.runs.create(thread_id, "custom", input={"query": "q"}))
            # Some leave before the admission, some as it wakes them, some after.
            for stream in streams:
                await asyncio.sleep(0.002)
                await stream.__aexit__(None, None, None)
            run = await created
        await asyncio.wait_for(client.runs.join(thread_id, run["run_id"]), TIMEOUT)
        await _settled(url, 0)


async def test_a_subscriber_that_stops_reading_holds_no_run_back(gateway: GatewayProcess) -> None:
    url = gateway.http_url
    client = get_client(url=url)
    thread_id = (await client.threads.create())["thread_id"]
    before = await _settled(url, 0)
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
        async with http.stream("POST", f"/threads/{thread_id}/stream/events", json={"channels": ALL}) as events:
            assert events.status_code == 200
            await _settled(url, 1)
            # Connected, never reading: what its socket and queues cannot take waits in the
            # run's ring until the stall timeout detaches its reader.
            first = await _heavy_run(client, thread_id)
            assert first["status"] == "success"
            detached = await _settled(url, 0)
            assert get(detached, DROPPED) == get(before, DROPPED) + 1
            # It follows the thread no more: the next run has no reader of it to wait for.
            second = await _heavy_run(client, thread_id)
            assert second["status"] == "success"
            assert get(await _settled(url, 0), DROPPED) == get(before, DROPPED) + 1
            # Reading at last, it gets what its queues kept, then the error that ends it.
            async with asyncio.timeout(TIMEOUT):
                received = [e async for e in aiter_events(events)]
            assert [e.event for e in received].count("error") == 1
            assert received[-1].event == "error" and received[-1].data["error"] == "resource_exhausted"
    assert get(await _settled(url, 0), SESSIONS, edge="http", kind="session") == 0
