"""What the official Python SDK's thread streams (`client.threads.stream()`) see of the protocol
graphs: the tests run these against our server (both edges, both transports) and against the
reference, and compare."""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph_sdk import get_client

TIMEOUT = 30


def _content(message: dict[str, Any]) -> str:
    # The reference's runs keep a model's reply as content blocks (LangChain's v2 output).
    content = message.get("content")
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return str(content)


async def agent(url: str, transport: str, city: str = "Paris") -> dict[str, Any]:
    """The tool-calling agent: its messages, tool calls, values and output."""
    client = get_client(url=url)
    async with client.threads.stream(assistant_id="tool_agent", transport=transport) as thread:  # type: ignore[arg-type]
        await thread.run.start(input={"messages": [{"role": "user", "content": f"weather in {city}"}]})

        async def texts() -> list[str]:
            streams = [m async for m in thread.messages]
            return [await m.text for m in streams]

        async def tools() -> list[tuple[str, Any, Any]]:
            handles = [t async for t in thread.tool_calls]
            return [(t.name, t.input, _content(await t.output)) for t in handles]

        async def values() -> list[dict[str, Any]]:
            return [v async for v in thread.values]

        seen = await asyncio.wait_for(asyncio.gather(texts(), tools(), values()), TIMEOUT)
        output = await asyncio.wait_for(thread.output, TIMEOUT)
        return {
            "texts": seen[0],
            "tools": seen[1],
            "last_values": [_content(m) for m in seen[2][-1]["messages"]],
            "output": [_content(m) for m in output["messages"]],
            "thread_id": thread.thread_id,
        }


async def approval(url: str, transport: str) -> dict[str, Any]:
    """An interrupt: thread.interrupted and thread.interrupts, answered with respond."""
    client = get_client(url=url)
    async with client.threads.stream(assistant_id="approval", transport=transport) as thread:  # type: ignore[arg-type]
        await thread.run.start(input={"action": "deploy"})
        async with asyncio.timeout(TIMEOUT):
            # The projection ends when the interrupt is requested.
            async for _ in thread.values:
                pass
        assert thread.interrupted
        interrupts = [{"value": i["value"], "namespace": i["namespace"]} for i in thread.interrupts]
        await thread.run.respond("yes")
        output = await asyncio.wait_for(thread.output, TIMEOUT)
        return {"interrupted": True, "interrupts": interrupts, "output": output}


async def subgraphs(url: str, transport: str) -> dict[str, Any]:
    """A subgraph, discovered by thread.subgraphs."""
    client = get_client(url=url)
    async with client.threads.stream(assistant_id="subgraphs", transport=transport) as thread:  # type: ignore[arg-type]
        await thread.run.start(input={"foo": "foo"})

        async def found() -> list[tuple[str | None, str]]:
            return [(h.graph_name, h.path[-1].partition(":")[0]) async for h in thread.subgraphs]

        handles = await asyncio.wait_for(found(), TIMEOUT)
        output = await asyncio.wait_for(thread.output, TIMEOUT)
        return {"subgraphs": handles, "output": output}


async def custom(url: str, transport: str) -> dict[str, Any]:
    """Data a node writes with the stream writer, on the custom channel."""
    client = get_client(url=url)
    async with client.threads.stream(assistant_id="custom", transport=transport) as thread:  # type: ignore[arg-type]
        await thread.run.start(input={"query": "q"})
        data: list[Any] = []

        async def read() -> None:
            async for event in thread.subscribe(["custom", "lifecycle"]):
                if event["method"] == "custom":
                    data.append(event["params"]["data"])

        reader = asyncio.create_task(read())
        output = await asyncio.wait_for(thread.output, TIMEOUT)
        await asyncio.wait_for(reader, TIMEOUT)
        return {"custom": data, "output": output}
