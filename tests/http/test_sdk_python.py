"""The official Python SDK (langgraph_sdk) against the real server: every stream mode with
payloads equal to LangGraph's own astream, several modes, subgraphs, stateless runs, joins,
waits, interrupts, and a reconnect after the connection is cut mid-stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError
from langgraph_sdk.schema import StreamPart

from tests._normalise import Normaliser
from tests._reference import STREAM_CASES as CASES
from tests._reference import astream, without_task_checkpoints
from tests._server import GatewayProcess


@pytest.fixture
async def client(gateway: GatewayProcess) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=gateway.http_url)
    yield client
    await client.aclose()


async def collect(parts: AsyncIterator[StreamPart]) -> list[StreamPart]:
    return [part async for part in parts]


def as_payloads(parts: list[StreamPart]) -> list[tuple[tuple[str, ...], str, Any]]:
    out = []
    for part in parts:
        if part.event in ("metadata", "error"):
            continue
        mode, *ns = part.event.split("|")
        out.append((tuple(ns), mode, part.data))
    return out


@pytest.mark.parametrize(("graph", "graph_input", "modes"), CASES, ids=[f"{g}-{'+'.join(m)}" for g, _, m in CASES])
async def test_stream_payloads_equal_langgraph_astream(
    client: LangGraphClient, graph: str, graph_input: dict, modes: list[str]
) -> None:
    thread = await client.threads.create()
    created: list[dict] = []
    parts = await collect(
        client.runs.stream(
            thread["thread_id"], graph, input=graph_input, stream_mode=modes, on_run_created=created.append
        )
    )
    assert parts[0].event == "metadata" and parts[0].data["run_id"] == created[0]["run_id"]
    assert created[0]["thread_id"] == thread["thread_id"]
    assert all(p.id for p in parts)
    got = without_task_checkpoints(as_payloads(parts))
    want = without_task_checkpoints(
        await astream(graph, graph_input, ["messages" if m == "messages-tuple" else m for m in modes])
    )
    assert Normaliser()(got) == Normaliser()(want)


async def test_legacy_messages_and_events_modes(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    parts = await collect(client.runs.stream(thread["thread_id"], "chat", input={"topic": "x"}, stream_mode="messages"))
    names = [p.event for p in parts]
    assert names[:2] == ["metadata", "messages/metadata"]
    partial = [p.data[0]["content"] for p in parts if p.event == "messages/partial"]
    assert partial[-1] == "Why did the x cross the road? To get to the other side!"
    assert all(b.startswith(a) for a, b in zip(partial, partial[1:], strict=False))

    events = await collect(client.runs.stream(None, "agent", input={"topic": "x"}, stream_mode="events"))
    kinds = [(p.data["event"], p.data["name"]) for p in events if p.event == "events"]
    assert kinds[0] == ("on_chain_start", "agent") and kinds[-1] == ("on_chain_end", "agent")


async def test_subgraphs_and_stateless(client: LangGraphClient) -> None:
    parts = await collect(
        client.runs.stream(
            None, "subgraphs", input={"foo": "x"}, stream_mode=["updates", "values"], stream_subgraphs=True
        )
    )
    inner = [p.event.split("|")[1] for p in parts if "|" in p.event]
    assert inner and all(ns.startswith("node_2:") for ns in inner)
    assert parts[-1] == StreamPart("values", {"foo": "hi! xbar"}, parts[-1].id)


async def test_join_stream_of_a_background_run(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "slow", input={"n": 100, "delay": 0.02}, stream_mode=["custom", "values"]
    )
    live = await collect(client.runs.join_stream(thread["thread_id"], run["run_id"]))
    ticks = [p.data["tick"] for p in live if p.event == "custom"]
    assert ticks and ticks == list(range(ticks[0], 100))  # joined mid-run: no gaps from there on
    replay = await collect(client.runs.join_stream(thread["thread_id"], run["run_id"], last_event_id="-1"))
    assert [p.data["tick"] for p in replay if p.event == "custom"] == list(range(100))
    only_values = await collect(
        client.runs.join_stream(thread["thread_id"], run["run_id"], last_event_id="0", stream_mode=["values"])
    )
    assert [p.event for p in only_values] == ["metadata", "values", "values"]
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "success"


async def test_wait_interrupt_and_resume(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    asked = await client.runs.wait(thread["thread_id"], "approval", input={"action": "deploy"})
    assert isinstance(asked, dict) and asked["__interrupt__"][0]["value"] == {"question": "Approve 'deploy'?"}
    state = await client.threads.get_state(thread["thread_id"])
    assert state["next"] == ["ask"] and state["interrupts"][0]["value"] == {"question": "Approve 'deploy'?"}
    parts = await collect(
        client.runs.stream(thread["thread_id"], "approval", command={"resume": "yes"}, stream_mode="values")
    )
    assert parts[-1].data == {"action": "deploy", "approved": True}
    assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"


async def test_errors_raise_the_sdk_exceptions(client: LangGraphClient) -> None:
    with pytest.raises(UnprocessableEntityError):
        await client.runs.create(None, "nope", input={})
    with pytest.raises(NotFoundError):
        await client.threads.get("00000000-0000-0000-0000-000000000000")
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "slow", input={"n": 400, "delay": 0.05})
    with pytest.raises(ConflictError):
        await client.runs.create(thread["thread_id"], "agent", input={"topic": "x"}, multitask_strategy="reject")
    await client.runs.cancel(thread["thread_id"], run["run_id"], wait=True)
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "interrupted"
    with pytest.raises(Exception, match="ValueError: the node failed on purpose"):
        await client.runs.wait(None, "failing", input={})


async def test_threads_assistants_and_state_through_the_sdk(client: LangGraphClient) -> None:
    thread = await client.threads.create(metadata={"k": "v"})
    await client.runs.wait(thread["thread_id"], "agent", input={"topic": "x"})
    await client.threads.update_state(thread["thread_id"], {"joke": "edited"}, as_node="generate_joke")
    history = await client.threads.get_history(thread["thread_id"], limit=10)
    assert history[0]["values"]["joke"] == "edited" and len(history) == 5
    found = await client.threads.search(metadata={"k": "v"}, limit=100)
    assert thread["thread_id"] in [t["thread_id"] for t in found]
    assert len(await client.runs.list(thread["thread_id"])) == 1
    assistants = await client.assistants.search(graph_id="agent")
    assert [a["graph_id"] for a in assistants] == ["agent"]
    graph = await client.assistants.get_graph(assistants[0]["assistant_id"])
    assert "refine_topic" in [n["id"] for n in graph["nodes"]]
    await client.threads.delete(thread["thread_id"])


def test_sync_client(gateway: GatewayProcess) -> None:
    client = get_sync_client(url=gateway.http_url)
    thread = client.threads.create()
    parts = list(
        client.runs.stream(thread["thread_id"], "custom", input={"query": "q"}, stream_mode=["updates", "custom"])
    )
    assert [p.event for p in parts] == ["metadata", "custom", "custom", "updates"]
    assert client.runs.wait(thread["thread_id"], "agent", input={"topic": "x"})["joke"] == (  # type: ignore[index]
        "This is a joke about x and cats"
    )
    run = client.runs.create(thread["thread_id"], "agent", input={"topic": "y"}, stream_resumable=True)
    replay = list(client.runs.join_stream(thread["thread_id"], run["run_id"], last_event_id="0"))
    assert [p.event for p in replay] == ["metadata", "values", "values", "values"]
    stateless = list(client.runs.stream(None, "agent", input={"topic": "z"}, stream_mode="updates"))
    assert [p.event for p in stateless] == ["metadata", "updates", "updates"]


class CuttingProxy:
    """A TCP proxy that drops its first connection after `cut_after` bytes from the server."""

    def __init__(self, upstream_port: int, cut_after: int) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.connections = 0
        self.requests = b""  # what clients sent after the cut
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        limit = self.cut_after if self.connections == 1 else None
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, limit: int | None) -> None:
            sent = 0
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    if src is reader and self.connections > 1:
                        self.requests += data
                    if limit is not None and sent + len(data) >= limit:
                        dst.write(data[: limit - sent])
                        await dst.drain()
                        break
                    sent += len(data)
                    dst.write(data)
                    await dst.drain()
            dst.close()
            up_writer.close()

        for job in (pipe(reader, up_writer, None), pipe(up_reader, writer, limit)):
            task = asyncio.create_task(job)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)


async def test_sdk_reconnects_after_a_cut_and_misses_nothing(gateway: GatewayProcess) -> None:
    # The first connection carries the thread's creation and the start of the stream, then
    # drops mid-run. The run is not resumable: ids go out on every event all the same, so the
    # SDK's reconnect resumes right after the last event it saw.
    proxy = CuttingProxy(gateway.http_port, cut_after=1500)
    port = await proxy.start()
    client = get_client(url=f"http://127.0.0.1:{port}")
    try:
        thread = await client.threads.create()
        parts = await collect(
            client.runs.stream(thread["thread_id"], "slow", input={"n": 60, "delay": 0.02}, stream_mode="custom")
        )
    finally:
        await client.aclose()
        await proxy.close()
    assert proxy.connections >= 2  # the cut one, then the reconnect
    assert b"last-event-id: " in proxy.requests.lower()
    assert [p.data["tick"] for p in parts if p.event == "custom"] == list(range(60))
    ids = [p.id for p in parts]
    assert len(set(ids)) == len(ids)
