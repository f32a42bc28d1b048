"""Graph factories of each form the Agent Server accepts (tests/graphs/store/graphs.py), through
the Python SDK on both backends, served by the gateway and (runs, state) by the bridge: built per
run from the run's config, with the runtime argument, (async) context managers exited when the
run ends; their threads' state, schemas and drawing."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_sync_client

from tests._server import GatewayProcess
from tests._store import store_backend, store_bridge, store_gateway, store_url, write_config

__all__ = ["store_backend", "store_bridge", "store_gateway", "store_url"]

NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
FACTORIES = ["plain_factory", "config_factory", "runtime_factory", "async_factory", "cm_factory", "acm_factory"]
RUN = {"access_context": "threads.create_run", "user": None, "has_store": True}


def _assistant(graph_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, graph_id))


@pytest.mark.parametrize(
    ("graph_id", "built"),
    [
        ("plain_factory", {"by": "plain"}),
        ("config_factory", {"by": "config", "flavor": None}),
        ("runtime_factory", {"by": "runtime", **RUN, "context": {}}),
        ("async_factory", {"by": "async", **RUN, "context": {}}),
        ("cm_factory", {"by": "cm"}),
        ("acm_factory", {"by": "acm", **RUN, "context": {}}),
    ],
)
def test_each_form_builds_the_run_s_graph(store_url: str, graph_id: str, built: dict[str, Any]) -> None:
    client = get_sync_client(url=store_url)
    thread = client.threads.create()
    out = client.runs.wait(thread["thread_id"], graph_id, input={"topic": "t"})
    assert out == {"topic": "t", "built": built}
    # The thread's state and history read through a graph the factory built for reading.
    assert client.threads.get_state(thread["thread_id"])["values"] == out
    assert len(client.threads.get_history(thread["thread_id"])) == 3
    assert client.runs.wait(None, graph_id, input={"topic": "u"})["built"] == built


def test_the_factory_gets_the_run_s_config_and_context(store_url: str) -> None:
    client = get_sync_client(url=store_url)
    out = client.runs.wait(None, "config_factory", input={}, config={"configurable": {"flavor": "vanilla"}})
    assert out["built"] == {"by": "config", "flavor": "vanilla"}
    out = client.runs.wait(None, "runtime_factory", input={}, context={"flavor": "lemon"})
    assert out["built"]["context"] == {"flavor": "lemon"}


def test_context_managers_are_exited_when_the_run_ends(store_url: str) -> None:
    client = get_sync_client(url=store_url)
    thread = client.threads.create()
    client.runs.wait(thread["thread_id"], "cm_factory", input={"topic": "t"})
    run_id = client.runs.list(thread["thread_id"])[0]["run_id"]
    log = client.runs.wait(None, "factory_log", input={"run_id": run_id})["log"]
    assert log == [["enter", run_id], ["exit", run_id]]
    # The async one records its entry and exit in the store, through the runtime's store: its
    # exit is there as soon as the run's result is.
    thread = client.threads.create()
    client.runs.wait(thread["thread_id"], "acm_factory", input={"topic": "t"})
    run_id = client.runs.list(thread["thread_id"])[0]["run_id"]
    assert client.store.get_item(["factory", "acm"], run_id)["value"] == {"entered": True, "exited": True}


def test_a_failing_factory_fails_its_run_and_a_non_graph_is_424(store_gateway: GatewayProcess) -> None:
    client = get_sync_client(url=store_gateway.http_url)
    parts = list(client.runs.stream(None, "broken_factory", input={}, config={"configurable": {"fail": True}}))
    assert [p.event for p in parts] == ["metadata", "error"]
    assert parts[1].data["error"] == "RuntimeError"
    # Built without `fail`, it gives something that is not a graph.
    response = client.http.client.get(f"/assistants/{_assistant('broken_factory')}/schemas")
    assert response.status_code == 424, response.text
    assert "not valid" in response.json()["detail"]
    # The gateway goes on serving the others.
    assert client.runs.wait(None, "plain_factory", input={"topic": "t"})["built"] == {"by": "plain"}


@pytest.mark.parametrize("graph_id", FACTORIES)
def test_schemas_and_drawing_of_a_factory_graph(store_gateway: GatewayProcess, graph_id: str) -> None:
    client = get_sync_client(url=store_gateway.http_url)
    schemas = client.assistants.get_schemas(_assistant(graph_id))
    assert schemas["graph_id"] == graph_id
    assert set(schemas["state_schema"]["properties"]) == {"topic", "built"}
    drawn = client.assistants.get_graph(_assistant(graph_id))
    assert [node["id"] for node in drawn["nodes"]] == ["__start__", "report", "__end__"]
    assert client.assistants.get_graph(_assistant(graph_id), xray=True) == drawn


def test_the_runtime_carries_the_caller(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path / "gateway.sqlite", config=write_config(tmp_path, auth=True)).start()
    try:
        alice = get_sync_client(url=proc.http_url, headers={"authorization": "Bearer alice"})
        out = alice.runs.wait(None, "runtime_factory", input={}, context={"flavor": "lemon"})
        assert out["built"] == {
            "by": "runtime",
            "access_context": "threads.create_run",
            "user": "alice",
            "has_store": True,
            "context": {"flavor": "lemon"},
        }
        bob = get_sync_client(url=proc.http_url, headers={"authorization": "Bearer bob"})
        assert bob.runs.wait(None, "async_factory", input={})["built"]["user"] == "bob"
    finally:
        proc.kill()
