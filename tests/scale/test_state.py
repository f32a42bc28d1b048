"""A thread's state updated on one gateway of a Postgres + Redis deployment, with LangChain
messages in it: the update answers 200, and the thread's streams on every gateway see it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests._server import ROOT, GatewayProcess
from tests.http._sse import Event, aiter_events

PROTOCOL_CONFIG = ROOT / "tests" / "graphs" / "protocol.json"


@pytest.fixture
def pair(shared_backends: tuple[str, ...], tmp_path: Path) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    """Two gateways of one deployment, serving a graph whose state is a list of messages."""
    with ExitStack() as stack:
        procs = []
        for _ in range(2):
            proc = GatewayProcess(tmp_path / "unused.sqlite", config=PROTOCOL_CONFIG, extra_args=shared_backends)
            stack.callback(proc.kill)
            procs.append(proc.start())
        yield procs[0], procs[1]


@asynccontextmanager
async def state_updates(url: str, thread_id: str) -> AsyncIterator[asyncio.Queue[Event]]:
    events: asyncio.Queue[Event] = asyncio.Queue()
    opened = asyncio.get_running_loop().create_future()

    async def read() -> None:
        async with (
            httpx.AsyncClient(base_url=url, timeout=30) as client,
            client.stream("GET", f"/threads/{thread_id}/stream", params={"stream_modes": "state_update"}) as response,
        ):
            opened.set_result(response.status_code)
            async for event in aiter_events(response):
                events.put_nowait(event)

    reader = asyncio.create_task(read())
    try:
        done, _ = await asyncio.wait({reader, opened}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        assert opened in done and opened.result() == 200
        yield events
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def test_a_state_update_with_messages_answers_200_and_reaches_every_gateways_stream(
    pair: tuple[GatewayProcess, GatewayProcess],
) -> None:
    a, b = pair
    async with httpx.AsyncClient(base_url=a.http_url, timeout=30) as client:
        created = await client.post("/threads", json={"metadata": {"graph_id": "tool_agent"}})
        thread_id = created.raise_for_status().json()["thread_id"]
        async with state_updates(a.http_url, thread_id) as here, state_updates(b.http_url, thread_id) as there:
            await asyncio.sleep(0.2)  # both subscribed, on their gateway and through Redis
            update = {"values": {"messages": [{"type": "human", "content": "hi", "id": "h-1"}]}, "as_node": "agent"}
            response = await client.post(f"/threads/{thread_id}/state", json=update)
            assert response.status_code == 200, response.text
            # An update without values still publishes the state it leaves, messages and all.
            response = await client.post(f"/threads/{thread_id}/state", json={})
            assert response.status_code == 200, response.text
            for events in (here, there):
                for _ in range(2):
                    async with asyncio.timeout(10):
                        event = await events.get()
                    assert event.event == "state_update" and event.data["thread_id"] == thread_id
                    (message,) = event.data["state"]["values"]["messages"]
                    assert (message["type"], message["content"], message["id"]) == ("human", "hi", "h-1")
        state = (await client.get(f"/threads/{thread_id}/state")).json()
        assert [m["content"] for m in state["values"]["messages"]] == ["hi"]
