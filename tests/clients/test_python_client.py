"""The light Python client (clients/python) against a real gateway, async and sync, on each
backend: streams named as the SSE API names them, interrupts resumed, state, errors by reason,
the store, assistants and crons."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from langgraph.gateway.client import StreamPart, get_client, get_sync_client
from langgraph.gateway.client.errors import (
    REASONS,
    AssistantNotFound,
    GatewayError,
    InvalidArgument,
    NotFoundError,
    RequestIdReused,
    ThreadNotFound,
)

from tests._server import GatewayProcess

ROOT = Path(__file__).resolve().parents[2]


async def test_stream_interrupt_resume_and_state(gateway: GatewayProcess) -> None:
    async with get_client(gateway.grpc_target) as client:
        thread = await client.threads.create(metadata={"suite": "client"})
        assert thread["status"] == "idle" and thread["metadata"] == {"suite": "client"}
        parts = [
            part
            async for part in client.runs.stream(
                thread["thread_id"], "approval", input={"action": "deploy"}, stream_mode=["updates", "values"]
            )
        ]
        assert parts[0].event == "metadata" and parts[0].data["attempt"] == 1
        interrupt = next(p for p in parts if p.event == "updates")
        assert interrupt.data["__interrupt__"][0]["value"] == {"question": "Approve 'deploy'?"}
        assert all(isinstance(p, StreamPart) and p.id for p in parts)
        state = await client.threads.get_state(thread["thread_id"])
        assert state["next"] == ["ask"] and state["interrupts"][0]["value"]["question"] == "Approve 'deploy'?"
        assert (await client.threads.get(thread["thread_id"]))["status"] == "interrupted"

        resumed = [
            p
            async for p in client.runs.stream(
                thread["thread_id"], "approval", command={"resume": "yes"}, stream_mode="values"
            )
        ]
        assert resumed[-1].data == {"action": "deploy", "approved": True}
        state = await client.threads.get_state(thread["thread_id"])
        assert state["values"] == {"action": "deploy", "approved": True} and state["next"] == []
        history = await client.threads.get_history(thread["thread_id"], limit=2)
        assert len(history) == 2 and history[0]["values"] == state["values"]


async def test_subgraph_events_are_named_by_namespace_and_joins_replay(gateway: GatewayProcess) -> None:
    async with get_client(gateway.grpc_target) as client:
        events = [
            p.event
            async for p in client.runs.stream(
                None, "subgraphs", input={"foo": "foo"}, stream_mode="updates", stream_subgraphs=True
            )
        ]
        assert events[0] == "metadata"
        assert any(e.startswith("updates|node_2:") for e in events), events

        thread = await client.threads.create()
        run = await client.runs.create(
            thread["thread_id"], "agent", input={"topic": "tea"}, stream_mode="updates", stream_resumable=True
        )
        assert run["status"] in ("pending", "running", "success")
        replay = [p async for p in client.runs.join_stream(thread["thread_id"], run["run_id"], last_event_id="0")]
        assert [list(p.data) for p in replay if p.event == "updates"] == [["refine_topic"], ["generate_joke"]]
        assert await client.runs.join(thread["thread_id"], run["run_id"]) == {
            "topic": "tea and cats",
            "joke": "This is a joke about tea and cats",
        }
        assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "success"
        assert [r["run_id"] for r in await client.runs.list(thread["thread_id"])] == [run["run_id"]]


async def test_errors_are_exceptions_with_the_code_and_the_message(gateway: GatewayProcess) -> None:
    missing = str(uuid.uuid4())
    async with get_client(gateway.grpc_target) as client:
        with pytest.raises(NotFoundError) as found:
            await client.threads.get(missing)
        assert found.value.status_code.name == "NOT_FOUND" and missing in found.value.message
        assert isinstance(found.value, ThreadNotFound) and found.value.reason == "THREAD_NOT_FOUND"
        assert found.value.thread_id == missing and found.value.resource == ("thread", missing)
        with pytest.raises(InvalidArgument) as invalid:
            await client.threads.get("not-a-uuid")
        assert invalid.value.reason == "INVALID_ARGUMENT"
        assert [name for name, _ in invalid.value.field_violations] == ["thread_id"]
        with pytest.raises(AssistantNotFound) as by_name:
            await client.assistants.get("no_such_graph")
        assert by_name.value.reason == "ASSISTANT_NOT_FOUND" and by_name.value.assistant_id == "no_such_graph"
        with pytest.raises(GatewayError) as unknown:
            await client.runs.wait(None, str(uuid.uuid4()), input={})
        assert unknown.value.status_code.name in ("NOT_FOUND", "INVALID_ARGUMENT")
        with pytest.raises(ValueError, match="stream_mode"):
            await client.runs.wait(None, "agent", input={}, stream_mode="tokens")


def test_the_sync_client(gateway: GatewayProcess) -> None:
    namespace = ["client", uuid.uuid4().hex]
    with get_sync_client(gateway.grpc_target) as client:
        thread = client.threads.create()
        parts = list(
            client.runs.stream(thread["thread_id"], "approval", input={"action": "ship"}, stream_mode="updates")
        )
        assert parts[-1].data["__interrupt__"][0]["value"] == {"question": "Approve 'ship'?"}
        assert client.runs.wait(thread["thread_id"], "approval", command={"resume": "no"}) == {
            "action": "ship",
            "approved": False,
        }
        # A stream left early is closed, and the client goes on.
        for part in client.runs.stream(None, "agent", input={"topic": "x"}, stream_mode="updates"):
            if part.event == "updates":
                break
        client.store.put_item(namespace, "k", {"v": 1})
        assert client.store.get_item(namespace, "k")["value"] == {"v": 1}
        assert [i["key"] for i in client.store.search_items(namespace)] == ["k"]
        client.store.delete_item(namespace, "k")
        assert client.store.get_item(namespace, "k") is None
        with pytest.raises(NotFoundError):
            client.threads.get(str(uuid.uuid4()))


async def test_assistants_and_crons(gateway: GatewayProcess) -> None:
    tag = uuid.uuid4().hex
    async with get_client(gateway.grpc_target) as client:
        bot = await client.assistants.create("contextual", context={"greeting": "ciao"}, metadata={"tag": tag})
        assert bot["version"] == 1 and await client.assistants.count(metadata={"tag": tag}) == 1
        updated = await client.assistants.update(bot["assistant_id"], context={"greeting": "hej"})
        assert updated["version"] == 2
        assert [v["version"] for v in await client.assistants.get_versions(bot["assistant_id"])] == [2, 1]
        assert (await client.assistants.get_schemas(bot["assistant_id"]))["graph_id"] == "contextual"
        assert "nodes" in await client.assistants.get_graph(bot["assistant_id"])
        thread = await client.threads.create()
        cron = await client.crons.create(
            bot["assistant_id"], schedule="0 0 1 1 *", thread_id=thread["thread_id"], input={}, metadata={"tag": tag}
        )
        assert cron["schedule"] == "0 0 1 1 *" and cron["end_time"] is None
        assert [c["cron_id"] for c in await client.crons.search(metadata={"tag": tag})] == [cron["cron_id"]]
        await client.crons.delete(cron["cron_id"])
        await client.assistants.delete(bot["assistant_id"])
        with pytest.raises(NotFoundError):
            await client.assistants.get(bot["assistant_id"])


async def test_a_request_id_makes_creation_idempotent(gateway: GatewayProcess) -> None:
    request_id = str(uuid.uuid4())
    async with get_client(gateway.grpc_target) as client:
        thread = await client.threads.create(request_id=request_id)
        assert (await client.threads.create(request_id=request_id))["thread_id"] == thread["thread_id"]
        run_id = str(uuid.uuid4())
        first = await client.runs.create(thread["thread_id"], "agent", input={"topic": "x"}, request_id=run_id)
        again = await client.runs.create(thread["thread_id"], "agent", input={"topic": "x"}, request_id=run_id)
        assert again["run_id"] == first["run_id"]
        streamed = [
            p async for p in client.runs.stream(thread["thread_id"], "agent", input={"topic": "x"}, request_id=run_id)
        ]
        assert streamed[0].data["run_id"] == first["run_id"]
        with pytest.raises(RequestIdReused) as reused:
            await client.runs.create(thread["thread_id"], "agent", input={"topic": "y"}, request_id=run_id)
        assert reused.value.status_code.name == "ALREADY_EXISTS" and "request_id" in reused.value.message
        assert reused.value.reason == "REQUEST_ID_REUSED" and reused.value.request_id == run_id


def test_every_reason_the_gateway_documents_has_a_class() -> None:
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", (ROOT / "docs" / "errors.md").read_text(), re.MULTILINE))
    assert documented and documented == set(REASONS)
