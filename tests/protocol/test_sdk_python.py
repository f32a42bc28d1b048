"""The official Python SDK's thread streams (`client.threads.stream()`, langgraph-sdk) on both
transports, against the gateway's own HTTP edge and the bridge's."""

from __future__ import annotations

import asyncio

import pytest
from langgraph_sdk import get_client

from tests.protocol import _sdk

TRANSPORTS = ["sse", "websocket"]
ANSWER = "The weather in Paris is sunny."


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tool_calling_agent(server: str, transport: str) -> None:
    seen = await _sdk.agent(server, transport)
    assert seen["texts"] == ["Let me check the weather.", ANSWER]
    # The reference never sends the tools channel: its thread.tool_calls stays empty.
    assert seen["tools"] == [("get_weather", {"city": "Paris"}, "It is sunny in Paris.")]
    conversation = ["weather in Paris", "Let me check the weather.", "It is sunny in Paris.", ANSWER]
    assert seen["last_values"] == seen["output"] == conversation


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_interrupt_answered_with_respond(server: str, transport: str) -> None:
    seen = await _sdk.approval(server, transport)
    # The SDK reads an interrupt's value from `value`; the reference sends only `payload`.
    assert seen["interrupts"] == [{"value": {"question": "Approve 'deploy'?"}, "namespace": []}]
    assert seen["output"] == {"action": "deploy", "approved": True}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_subgraph_discovered(server: str, transport: str) -> None:
    seen = await _sdk.subgraphs(server, transport)
    assert seen["subgraphs"] == [("node_2", "node_2")]
    assert seen["output"] == {"foo": "hi! foobar"}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_custom_data(server: str, transport: str) -> None:
    seen = await _sdk.custom(server, transport)
    assert seen["custom"] == [
        {"payload": {"custom_key": "Generating custom data inside node"}},
        {"payload": {"progress": 50}},
    ]
    assert seen["output"] == {"query": "q", "answer": "some data"}


async def test_named_custom_data_reaches_extensions(server: str) -> None:
    # Data written as {"name", "payload"} goes to custom:<name>, which thread.extensions reads.
    client = get_client(url=server)
    async with client.threads.stream(assistant_id="tool_agent") as thread:
        await thread.run.start(input={"messages": [{"role": "user", "content": "weather in Oslo"}]})

        async def read() -> list[object]:
            return [item async for item in thread.extensions["weather"]]

        items = await asyncio.wait_for(read(), _sdk.TIMEOUT)
    assert items == [{"name": "weather", "payload": {"looking_up": "Oslo"}}]


async def test_second_run_on_a_thread_streams_only_its_own_events(server: str) -> None:
    # run.start says which seq its run starts after (meta.applied_through_seq), so the SDK's
    # projections opened after it see that run only: with the reference's 0 they replay the
    # thread's earlier runs, and the first one's end ends them.
    client = get_client(url=server)
    first = await _sdk.agent(server, "sse", city="Rome")
    async with client.threads.stream(first["thread_id"], assistant_id="tool_agent") as thread:
        await thread.run.start(input={"messages": [{"role": "user", "content": "weather in Paris"}]})

        async def texts() -> list[str]:
            streams = [m async for m in thread.messages]
            return [await m.text for m in streams]

        seen = await asyncio.wait_for(texts(), _sdk.TIMEOUT)
    assert seen == ["Let me check the weather.", ANSWER]
