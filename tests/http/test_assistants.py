"""Assistant routes, /ok and /info, and the API key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.errors import AuthenticationError

from tests._server import GRAPH_COUNT, GatewayProcess

AGENT_ID = "fe096781-5601-53d2-b2f6-0d3403f7e9ca"  # uuid5 of the graph name, as the Agent Server


def test_get_assistant(http: httpx.Client) -> None:
    assistant = http.get(f"/assistants/{AGENT_ID}").json()
    assert list(assistant) == [
        "assistant_id",
        "graph_id",
        "config",
        "context",
        "metadata",
        "name",
        "created_at",
        "updated_at",
        "version",
        "description",
    ]
    assert assistant["graph_id"] == "agent" and assistant["metadata"] == {"created_by": "system"}
    # Graph names are accepted only where runs are created, as by the Agent Server.
    assert http.get("/assistants/agent").status_code == 422
    assert http.get("/assistants/00000000-0000-0000-0000-000000000000").status_code == 404


def test_search_and_count_assistants(http: httpx.Client) -> None:
    found = http.post("/assistants/search", json={"limit": 3})
    assert len(found.json()) == 3
    assert found.headers["x-pagination-next"] == "3"
    # The system assistants: other tests (and the fuzzer) make assistants of their own.
    system = {"metadata": {"created_by": "system"}}
    everything = http.post("/assistants/search", json={"limit": 100, **system}).json()
    assert len(everything) == http.post("/assistants/count", json=system).json() == GRAPH_COUNT
    chat = http.post("/assistants/search", json={"graph_id": "chat", **system}).json()
    assert [a["graph_id"] for a in chat] == ["chat"]
    assert http.post("/assistants/count", json={"metadata": {"created_by": "nobody"}}).json() == 0
    assert http.post("/assistants/search", json={"graph_id": "nope"}).status_code == 404
    assert http.post("/assistants/search", json={"limit": "x"}).status_code == 422


def test_graph_and_schemas(http: httpx.Client) -> None:
    graph = http.get("/assistants/agent/graph").json()
    assert [n["id"] for n in graph["nodes"]] == ["__start__", "refine_topic", "generate_joke", "__end__"]
    assert {"source": "refine_topic", "target": "generate_joke"} in graph["edges"]
    assert http.get(f"/assistants/{AGENT_ID}/graph").json() == graph
    nested = http.get("/assistants/subgraphs/graph?xray=1").json()
    assert "node_2:subgraph_node_1" in [n["id"] for n in nested["nodes"]]
    assert http.get("/assistants/agent/graph?xray=maybe").status_code == 422
    assert http.get("/assistants/agent/graph?xray=%C2%B3").status_code == 422  # "³", a digit to str.isdigit()
    schemas = http.get("/assistants/chat/schemas").json()
    assert schemas["graph_id"] == "chat"
    assert schemas["input_schema"]["properties"]["topic"]["type"] == "string"
    assert schemas["state_schema"]["title"] == "chat_state"


def test_ok_and_info(http: httpx.Client) -> None:
    assert http.get("/ok").json() == {"ok": True}
    info = http.get("/info").json()
    assert info["flags"]["assistants"] is True and info["langgraph_py_version"]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    db = Path(tmp_path_factory.mktemp("keyed")) / "gateway.sqlite"
    proc = GatewayProcess(db, extra_args=("--api-key", "s3cret")).start()
    yield proc
    proc.kill()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/info"),
        ("POST", "/threads"),
        ("POST", "/runs/stream"),
        ("GET", "/threads/00000000-0000-0000-0000-000000000000/stream"),
        ("POST", "/assistants/search"),
        ("GET", "/nope"),
    ],
)
def test_every_route_but_ok_needs_the_api_key(keyed: GatewayProcess, method: str, path: str) -> None:
    with httpx.Client(base_url=keyed.http_url) as client:
        missing = client.request(method, path, json={})
        assert missing.status_code == 401 and missing.json() == {"detail": "Missing x-api-key header"}
        wrong = client.request(method, path, json={}, headers={"x-api-key": "nope"})
        assert wrong.status_code == 401 and wrong.json() == {"detail": "Invalid x-api-key"}
        assert client.get("/ok").status_code == 200


def test_sdk_with_the_api_key(keyed: GatewayProcess) -> None:
    client = get_sync_client(url=keyed.http_url, api_key="s3cret")
    thread = client.threads.create()
    parts = list(client.runs.stream(thread["thread_id"], "agent", input={"topic": "x"}, stream_mode="updates"))
    assert [p.event for p in parts] == ["metadata", "updates", "updates"]
    with pytest.raises(AuthenticationError):
        get_sync_client(url=keyed.http_url, api_key="wrong").threads.create()


def test_a_deleted_system_assistant_is_back_at_its_next_use(http: httpx.Client) -> None:
    custom = str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "custom"))
    assert http.patch(f"/assistants/{custom}", json={"metadata": {"changed": True}}).json()["version"] >= 2
    assert http.delete(f"/assistants/{custom}").status_code == 204
    # The graph's system assistant is the config's: its next use makes it again, as version 1.
    ran = http.post("/runs/wait", json={"assistant_id": "custom", "input": {"query": "q"}})
    assert ran.status_code == 200
    again = http.get(f"/assistants/{custom}").json()
    assert again["version"] == 1 and again["metadata"] == {"created_by": "system"}
