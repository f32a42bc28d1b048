"""Our thread protocol against the reference server's (`langgraph dev`, langgraph-api 0.16.7), on
the same graphs: what the Python SDK's thread streams see, and the events on the wire, channel
by channel, where both are deterministic. Where we differ on purpose, the test says so."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.http._sse import aiter_events
from tests.protocol import _sdk
from tests.protocol._reference import reference_server

ALL = ["values", "updates", "messages", "tools", "lifecycle", "input", "checkpoints", "tasks", "custom"]
TIMEOUT = 30


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with reference_server(tmp_path_factory.mktemp("reference")) as url:
        yield url


@pytest.fixture
def ours(protocol_gateway: Any) -> str:
    return str(protocol_gateway.http_url)


# What the SDK sees


async def test_sdk_agent(reference: str, ours: str) -> None:
    theirs, mine = await _sdk.agent(reference, "sse"), await _sdk.agent(ours, "sse")
    for key in ("texts", "last_values", "output"):
        assert mine[key] == theirs[key], key
    # Better: the reference never sends the tools channel, so thread.tool_calls stays empty.
    assert theirs["tools"] == []
    assert mine["tools"] == [("get_weather", {"city": "Paris"}, "It is sunny in Paris.")]


async def test_sdk_interrupt(reference: str, ours: str) -> None:
    theirs, mine = await _sdk.approval(reference, "sse"), await _sdk.approval(ours, "sse")
    assert mine["output"] == theirs["output"] == {"action": "deploy", "approved": True}
    # Better: the SDK reads an interrupt's `value`, which the reference does not send.
    assert theirs["interrupts"] == [{"value": None, "namespace": []}]
    assert mine["interrupts"] == [{"value": {"question": "Approve 'deploy'?"}, "namespace": []}]


async def test_sdk_subgraphs(reference: str, ours: str) -> None:
    theirs, mine = await _sdk.subgraphs(reference, "sse"), await _sdk.subgraphs(ours, "sse")
    assert mine == theirs


async def test_sdk_custom(reference: str, ours: str) -> None:
    theirs, mine = await _sdk.custom(reference, "sse"), await _sdk.custom(ours, "sse")
    assert mine["output"] == theirs["output"]
    # Better: the reference accepts the custom channel but never sends it.
    assert theirs["custom"] == []
    assert len(mine["custom"]) == 2


# The wire


async def _transcript(url: str, graph: str, graph_input: Any, resume: Any = None) -> list[dict[str, Any]]:
    """Every event of the thread's runs: the run, and its resume when there is one."""
    thread_id = str(uuid.uuid4())
    events: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client:

        async def command(cmd_id: int, method: str, params: dict[str, Any]) -> None:
            reply = (
                await client.post(
                    f"/threads/{thread_id}/commands", json={"id": cmd_id, "method": method, "params": params}
                )
            ).json()
            assert reply["type"] == "success", reply

        async def read(since: int | None) -> None:
            body: dict[str, Any] = {"channels": ALL} if since is None else {"channels": ALL, "since": since}
            async with client.stream("POST", f"/threads/{thread_id}/stream/events", json=body) as response:
                async for event in aiter_events(response):
                    events.append(event.data)
                    if _root_terminal(event.data):
                        return

        await command(1, "run.start", {"assistant_id": graph, "input": graph_input})
        await asyncio.wait_for(read(None), TIMEOUT)
        if resume is not None:
            state = (await client.get(f"/threads/{thread_id}/state")).json()
            interrupt_id = state["interrupts"][0]["id"]
            await command(2, "input.respond", {"interrupt_id": interrupt_id, "namespace": [], "response": resume})
            await asyncio.sleep(0.5)  # the reference's runs start on its worker's next poll
            await asyncio.wait_for(read(events[-1]["seq"]), TIMEOUT)
    return events


def _ns(namespace: list[str]) -> tuple[str, ...]:
    return tuple(segment.partition(":")[0] for segment in namespace)


def _message(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "id"}


def _lifecycle(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (_ns(e["params"]["namespace"]), e["params"]["data"]["event"], e["params"]["data"].get("graph_name", ""))
        for e in events
        if e["method"] == "lifecycle"
    )


def _channel(events: list[dict[str, Any]], method: str) -> list[tuple[tuple[str, ...], Any]]:
    return [(_ns(e["params"]["namespace"]), e["params"]["data"]) for e in events if e["method"] == method]


CASES = [
    ("tool_agent", {"messages": [{"role": "user", "content": "weather in Paris"}]}, None),
    ("approval", {"action": "deploy"}, "yes"),
    ("subgraphs", {"foo": "foo"}, None),
    ("nested", {"topic": "cats"}, "approved"),
    ("custom", {"query": "q"}, None),
    ("failing", {"topic": "x"}, None),
]


@pytest.mark.parametrize(("graph", "graph_input", "resume"), CASES, ids=[c[0] for c in CASES])
async def test_wire(reference: str, ours: str, graph: str, graph_input: Any, resume: Any) -> None:
    theirs = await _transcript(reference, graph, graph_input, resume)
    mine = await _transcript(ours, graph, graph_input, resume)

    # Messages: the same content-block events (the message ids are the models' own).
    assert [(ns, _message(d)) for ns, d in _channel(mine, "messages")] == [
        (ns, _message(d)) for ns, d in _channel(theirs, "messages")
    ]
    # Lifecycle: the same events. The order differs on purpose: a subgraph's `started`
    # comes before its first event (the reference's comes after it), and a run's terminal
    # event is its last (the reference sends `interrupted` before the run's last events).
    assert _lifecycle(mine) == _lifecycle(theirs)
    for i, event in enumerate(mine):
        if _root_terminal(event):
            assert i + 1 == len(mine) or mine[i + 1]["params"]["data"]["event"] == "running"
    # Interrupts: the same requests; ours also carry `value`, where the SDKs read them.
    theirs_requests = [(ns, _text(d["payload"])) for ns, d in _channel(theirs, "input.requested")]
    assert [(ns, d["payload"]) for ns, d in _channel(mine, "input.requested")] == theirs_requests
    assert all(d["value"] == d["payload"] for _, d in _channel(mine, "input.requested"))
    # Values: the same final state of each run, where the reference's state is not its
    # models' content blocks (it runs models through LangChain's v2 output).
    if graph not in ("tool_agent", "nested"):
        assert _final_values(mine) == _final_values(theirs)
    # Seqs increase; event ids are unique.
    assert [e["seq"] for e in mine] == sorted(e["seq"] for e in mine)
    assert len({e["event_id"] for e in mine}) == len(mine)


def _root_terminal(event: dict[str, Any]) -> bool:
    params = event["params"]
    return event["method"] == "lifecycle" and not params["namespace"] and params["data"]["event"] != "running"


def _text(value: Any) -> Any:
    """A model's reply as text: the reference keeps it as content blocks (LangChain's v2 output)."""
    if isinstance(value, list) and value and all(isinstance(b, dict) and b.get("type") == "text" for b in value):
        return "".join(b["text"] for b in value)
    if isinstance(value, dict):
        return {k: _text(v) for k, v in value.items()}
    return value


def _final_values(events: list[dict[str, Any]]) -> list[Any]:
    finals, last = [], None
    for event in events:
        if event["method"] == "values" and not event["params"]["namespace"]:
            last = event["params"]["data"]
        elif _root_terminal(event):
            finals.append(last)
    return finals
