"""Reconnecting to a thread's protocol stream: an SSE stream or a WebSocket cut in the middle of
a run and opened again with `since` (the seq of the last event received) misses nothing and
repeats nothing; and seqs and event ids are the same on every connection."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.http._sse import aiter_events

ALL = ["values", "updates", "messages", "tools", "lifecycle", "input", "checkpoints", "tasks", "custom"]
TIMEOUT = 30


def _terminal(event: dict[str, Any]) -> bool:
    params = event["params"]
    return event["method"] == "lifecycle" and not params["namespace"] and params["data"]["event"] != "running"


async def _start(client: httpx.AsyncClient, thread_id: str, assistant_id: str, graph_input: Any) -> dict[str, Any]:
    command = {"id": 1, "method": "run.start", "params": {"assistant_id": assistant_id, "input": graph_input}}
    reply = (await client.post(f"/threads/{thread_id}/commands", json=command)).json()
    assert reply["type"] == "success", reply
    return reply  # type: ignore[no-any-return]


async def _sse(
    client: httpx.AsyncClient, thread_id: str, body: dict[str, Any], *, stop_after: int | None = None
) -> list[dict[str, Any]]:
    """Events until the run's end, or the first `stop_after` (then the connection is dropped)."""
    events: list[dict[str, Any]] = []
    async with client.stream("POST", f"/threads/{thread_id}/stream/events", json=body) as response:
        assert response.status_code == 200, await response.aread()
        async for event in aiter_events(response):
            assert event.id == str(event.data["seq"]) == event.data["event_id"]
            events.append(event.data)
            if len(events) == stop_after or _terminal(event.data):
                break
    return events


def _check_resumed(before: list[dict[str, Any]], after: list[dict[str, Any]], whole: list[dict[str, Any]]) -> None:
    ids = [e["event_id"] for e in before + after]
    assert len(ids) == len(set(ids)), "an event came twice"
    assert [e["seq"] for e in before + after] == [e["seq"] for e in whole]
    strip = [{k: v for k, v in e.items() if k != "params"} | {"data": e["params"]["data"]} for e in whole]
    assert [
        {k: v for k, v in e.items() if k != "params"} | {"data": e["params"]["data"]} for e in before + after
    ] == strip


async def test_sse_cut_mid_run_resumes_with_since(server: str) -> None:
    thread_id = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=server, timeout=TIMEOUT) as client:
        await _start(client, thread_id, "slow", {"n": 40, "delay": 0.02})
        before = await _sse(client, thread_id, {"channels": ALL}, stop_after=12)
        await asyncio.sleep(0.2)  # the run goes on while nobody listens
        after = await _sse(client, thread_id, {"channels": ALL, "since": before[-1]["seq"]})
        whole = await _sse(client, thread_id, {"channels": ALL})
    assert len(whole) > 40 and _terminal(whole[-1])
    _check_resumed(before, after, whole)


async def test_last_event_id_header_resumes_too(server: str) -> None:
    thread_id = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=server, timeout=TIMEOUT) as client:
        await _start(client, thread_id, "slow", {"n": 10, "delay": 0.01})
        whole = await _sse(client, thread_id, {"channels": ["custom", "lifecycle"]})
        client.headers["last-event-id"] = str(whole[3]["seq"])
        rest = await _sse(client, thread_id, {"channels": ["custom", "lifecycle"]})
    assert rest == whole[4:] or [e["event_id"] for e in rest] == [e["event_id"] for e in whole[4:]]


def _ws_url(server: str, thread_id: str) -> str:
    return server.replace("http://", "ws://") + f"/threads/{thread_id}/stream/events"


async def _ws_read(
    socket: ClientConnection, *, stop_after: int | None = None
) -> tuple[list[dict[str, Any]], list[Any]]:
    events: list[dict[str, Any]] = []
    replies: list[Any] = []
    async with asyncio.timeout(TIMEOUT):
        async for raw in socket:
            message = orjson.loads(raw)
            if message.get("type") != "event":
                replies.append(message)
                continue
            events.append(message)
            if len(events) == stop_after or _terminal(message):
                break
    return events, replies


async def test_websocket_cut_mid_run_resumes_with_since(server: str) -> None:
    thread_id = str(uuid.uuid4())
    subscribe = {"id": 1, "method": "subscription.subscribe", "params": {"channels": ALL}}
    async with httpx.AsyncClient(base_url=server, timeout=TIMEOUT) as client:
        await _start(client, thread_id, "slow", {"n": 40, "delay": 0.02})
        socket = await connect(_ws_url(server, thread_id))
        await socket.send(orjson.dumps(subscribe).decode())
        before, replies = await _ws_read(socket, stop_after=12)
        # Cut, not closed: the server learns of it when it next writes.
        socket.transport.abort()
        await asyncio.sleep(0.2)
        async with connect(_ws_url(server, thread_id)) as again:
            resume = {**subscribe, "params": {"channels": ALL, "since": before[-1]["seq"]}}
            await again.send(orjson.dumps(resume).decode())
            after, _ = await _ws_read(again)
        whole = await _sse(client, thread_id, {"channels": ALL})
    assert replies[0]["result"]["subscription_id"]
    _check_resumed(before, after, whole)


async def test_websocket_carries_commands_and_several_subscriptions(server: str) -> None:
    # The JS SDK's way: commands and events on one socket, subscription ids scoped to it.
    thread_id = str(uuid.uuid4())
    async with connect(_ws_url(server, thread_id)) as socket:

        async def command(cmd_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
            await socket.send(orjson.dumps({"id": cmd_id, "method": method, "params": params}).decode())
            async with asyncio.timeout(TIMEOUT):
                async for raw in socket:
                    message = orjson.loads(raw)
                    if message.get("id") == cmd_id and message["type"] != "event":
                        return message  # type: ignore[no-any-return]
            raise AssertionError("no reply")

        first = await command(1, "subscription.subscribe", {"channels": ["lifecycle", "input"]})
        second = await command(2, "subscription.subscribe", {"channels": ["lifecycle", "values"]})
        assert first["result"]["subscription_id"] != second["result"]["subscription_id"]
        started = await command(3, "run.start", {"assistant_id": "approval", "input": {"action": "deploy"}})
        assert started["type"] == "success" and started["meta"]["applied_through_seq"] >= 0
        events, _ = await _ws_read(socket)
        methods = [e["method"] for e in events]
        assert methods[0] == "lifecycle" and "input.requested" in methods and "values" in methods
        # One subscription per event on the socket: lifecycle events match both, and come once.
        assert len({e["event_id"] for e in events}) == len(events)
        request = next(e for e in events if e["method"] == "input.requested")["params"]["data"]
        assert request["payload"] == request["value"] == {"question": "Approve 'deploy'?"}
        unsubscribed = await command(
            4, "subscription.unsubscribe", {"subscription_id": second["result"]["subscription_id"]}
        )
        assert unsubscribed["type"] == "success"
        again = await command(5, "subscription.unsubscribe", {"subscription_id": second["result"]["subscription_id"]})
        assert again["type"] == "error" and again["error"] == "no_such_subscription"
        answer = {"interrupt_id": request["interrupt_id"], "namespace": [], "response": "yes"}
        resumed = await command(6, "input.respond", answer)
        assert resumed["type"] == "success" and resumed["result"]["run_id"]
        rest, _ = await _ws_read(socket)
        assert [e["params"]["data"]["event"] for e in rest if e["method"] == "lifecycle"] == ["running", "completed"]
        assert all(e["method"] in ("lifecycle", "input.requested") for e in rest)


async def test_seqs_and_event_ids_are_the_same_on_every_connection(server: str) -> None:
    thread_id = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=server, timeout=TIMEOUT) as client:
        await _start(client, thread_id, "tool_agent", {"messages": [{"role": "user", "content": "weather in Oslo"}]})
        one = await _sse(client, thread_id, {"channels": ALL})
        two = await _sse(client, thread_id, {"channels": ["messages", "lifecycle"]})
    by_id = {e["event_id"]: (e["seq"], e["method"], e["params"]["data"]) for e in one}
    assert all(by_id[e["event_id"]] == (e["seq"], e["method"], e["params"]["data"]) for e in two)
    assert [e["seq"] for e in one] == sorted({e["seq"] for e in one})
