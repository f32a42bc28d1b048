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
async def thread_events(url: str, thread_id: str) -> AsyncIterator[asyncio.Queue[Event]]:
    """The thread's runs' ends and state updates, from the start of what its runs still hold."""
    events: asyncio.Queue[Event] = asyncio.Queue()
    opened = asyncio.get_running_loop().create_future()

    async def read() -> None:
        params = {"stream_modes": "lifecycle,state_update"}
        async with (
            httpx.AsyncClient(base_url=url, timeout=30) as client,
            client.stream(
                "GET", f"/threads/{thread_id}/stream", params=params, headers={"Last-Event-ID": "0"}
            ) as response,
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


async def _next(events: asyncio.Queue[Event], name: str) -> Event:
    async with asyncio.timeout(10):
        while True:
            event = await events.get()
            if event.event == name:
                return event


async def test_a_state_update_with_messages_answers_200_and_reaches_every_gateways_stream(
    pair: tuple[GatewayProcess, GatewayProcess],
) -> None:
    a, b = pair
    async with httpx.AsyncClient(base_url=a.http_url, timeout=30) as client:
        thread_id = (await client.post("/threads", json={})).raise_for_status().json()["thread_id"]
        async with thread_events(a.http_url, thread_id) as here, thread_events(b.http_url, thread_id) as there:
            question = {"messages": [{"role": "user", "content": "weather in Paris"}]}
            ran = await client.post(
                f"/threads/{thread_id}/runs/wait", json={"assistant_id": "tool_agent", "input": question}
            )
            assert ran.status_code == 200, ran.text
            # Both streams follow the thread (its run replayed or live, to its end) before its
            # state changes, which only live subscribers see.
            for events in (here, there):
                while (await _next(events, "metadata")).data.get("status") != "run_done":
                    pass
            update = {"values": {"messages": [{"type": "human", "content": "thanks", "id": "h-1"}]}, "as_node": "agent"}
            response = await client.post(f"/threads/{thread_id}/state", json=update)
            assert response.status_code == 200, response.text
            # An update without values still publishes the state it leaves, messages and all.
            response = await client.post(f"/threads/{thread_id}/state", json={})
            assert response.status_code == 200, response.text
            for events in (here, there):
                for _ in range(2):
                    event = await _next(events, "state_update")
                    assert event.data["thread_id"] == thread_id
                    messages = event.data["state"]["values"]["messages"]
                    assert [m["type"] for m in messages] == ["human", "ai", "tool", "ai", "human"]
                    assert (messages[-1]["content"], messages[-1]["id"]) == ("thanks", "h-1")
                    assert messages[1]["tool_calls"][0]["args"] == {"city": "Paris"}
        state = (await client.get(f"/threads/{thread_id}/state")).json()
        assert [m["content"] for m in state["values"]["messages"]][-1] == "thanks"
