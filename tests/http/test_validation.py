"""Bad input over HTTP, on the gateway and through the bridge alike: refused with 422 naming the
field before anything runs, with messages that quote at most a short prefix of it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import httpx
import pytest
from starlette.routing import Route

from gateway.http._backend import Backend
from gateway.http.app import build_app
from gateway.shared.serde import MAX_NESTING
from tests._server import GatewayProcess

UUID_PARAMS = ("thread_id", "run_id", "assistant_id", "cron_id")
# Every route with an id in its path, with each of its methods.
ID_ROUTES = sorted(
    (route.path, method)
    for route in build_app(cast(Backend, None), info={}).routes
    if isinstance(route, Route) and any(f"{{{name}}}" in route.path for name in UUID_PARAMS)
    for method in route.methods or ()
    if method != "HEAD"
)


@pytest.fixture(params=["gateway", "bridge"])
def client(request: pytest.FixtureRequest, gateway: GatewayProcess) -> Iterator[httpx.Client]:
    url = gateway.http_url if request.param == "gateway" else request.getfixturevalue("bridge").http_url
    with httpx.Client(base_url=url, timeout=30) as http:
        yield http


def nested(levels: int) -> object:
    """An array `levels` deep ([] is one level)."""
    value: object = []
    for _ in range(levels - 1):
        value = [value]
    return value


def new_thread(client: httpx.Client, **body: object) -> str:
    response = client.post("/threads", json=body)
    response.raise_for_status()
    return str(response.json()["thread_id"])


def runs_of(client: httpx.Client, thread_id: str) -> list[object]:
    response = client.get(f"/threads/{thread_id}/runs")
    response.raise_for_status()
    return cast(list[object], response.json())


@pytest.mark.parametrize(
    ("command", "names"),
    [
        ({"bogus": 1}, "'bogus'"),
        ({"resume": "yes", "bogus": 1}, "'bogus'"),
        ({"resume": None}, "command must set one of"),
        ({"update": 3}, "command.update"),
        ({"goto": [1]}, "command.goto"),
        ({"goto": {"node": "x"}}, "command.goto"),
        ("resume", "command must be an object"),
    ],
)
def test_a_malformed_command_is_422_before_any_run(client: httpx.Client, command: object, names: str) -> None:
    thread_id = new_thread(client)
    for route in ("runs", "runs/wait", "runs/stream"):
        response = client.post(f"/threads/{thread_id}/{route}", json={"assistant_id": "agent", "command": command})
        assert response.status_code == 422, (route, response.text)
        assert names in response.json()["detail"], response.json()
    assert runs_of(client, thread_id) == []


def test_input_and_command_together_are_422_before_any_run(client: httpx.Client) -> None:
    thread_id = new_thread(client)
    body = {"assistant_id": "agent", "input": {"topic": "x"}, "command": {"update": {"topic": "y"}}}
    for route in (f"/threads/{thread_id}/runs", f"/threads/{thread_id}/runs/wait", "/runs/wait", "/runs/stream"):
        response = client.post(route, json=body)
        assert response.status_code == 422, (route, response.text)
        assert "input and command" in response.json()["detail"]
    assert runs_of(client, thread_id) == []
    # A null input is no input: the command runs.
    command = {"update": {"topic": "y"}, "goto": "refine_topic"}
    resumed = {"assistant_id": "agent", "input": None, "command": command}
    assert client.post(f"/threads/{thread_id}/runs/wait", json=resumed).json()["topic"] == "y and cats"


@pytest.mark.parametrize("limit", [0, -3])
def test_a_recursion_limit_below_one_is_422_before_any_run(client: httpx.Client, limit: int) -> None:
    thread_id = new_thread(client)
    body = {"assistant_id": "agent", "input": {"topic": "x"}, "config": {"recursion_limit": limit}}
    for route in (f"/threads/{thread_id}/runs", f"/threads/{thread_id}/runs/stream", "/runs/wait"):
        response = client.post(route, json=body)
        assert response.status_code == 422, (route, response.text)
        assert response.json()["detail"] == f"config.recursion_limit must be at least 1, not {limit}"
    assert runs_of(client, thread_id) == []


def test_a_run_without_the_input_its_graph_needs_says_so(client: httpx.Client) -> None:
    failed = client.post("/runs/wait", json={"assistant_id": "agent"})
    assert failed.status_code == 200
    error = failed.json()["__error__"]
    assert error["error"] == "EmptyInputError"
    assert error["message"].startswith("the run received no input"), error


@pytest.mark.parametrize(("path", "method"), ID_ROUTES, ids=[f"{m} {p}" for p, m in ID_ROUTES])
def test_a_malformed_path_id_is_422_on_every_route_and_quoted_short(
    client: httpx.Client, path: str, method: str
) -> None:
    bad = "x" * 10_000
    url = path
    for name in UUID_PARAMS:
        url = url.replace(f"{{{name}}}", bad)
    body = {"assistant_id": "agent"} if method in ("POST", "PUT", "PATCH") else None
    response = client.request(method, url, json=body)
    assert response.status_code == 422, response.text[:300]
    detail = response.json()["detail"]
    # Quoted, but only a short prefix of it (some routes also take a graph's name, and say so).
    assert "'xxxxxxxx" in detail and "x" * 100 not in detail, detail[:300]


def test_a_field_nested_past_the_limit_is_422_naming_it(client: httpx.Client) -> None:
    thread_id = new_thread(client)
    for route, field in (
        ("/threads", "metadata"),
        (f"/threads/{thread_id}/runs/wait", "input"),
        (f"/threads/{thread_id}/runs/wait", "config"),
        ("/assistants/search", "metadata"),
    ):
        body = {"assistant_id": "agent", field: {"deep": nested(MAX_NESTING)}}
        response = client.post(route, json=body)
        assert response.status_code == 422, (route, response.text)
        assert response.json()["detail"].startswith(f"{field} is nested more than {MAX_NESTING} levels deep")
    batch = client.post("/runs/batch", json=[{"assistant_id": "agent", "input": {"deep": nested(MAX_NESTING)}}])
    assert batch.status_code == 422 and "input is nested more than" in batch.json()["detail"]
    assert runs_of(client, thread_id) == []


def test_a_field_nested_to_the_limit_comes_back_on_both_edges(client: httpx.Client) -> None:
    deep = {"deep": nested(MAX_NESTING - 1)}
    thread_id = new_thread(client, metadata=deep)
    assert client.get(f"/threads/{thread_id}").json()["metadata"]["deep"] == deep["deep"]
    found = client.post("/threads/search", json={"ids": [thread_id]}).json()
    assert found[0]["metadata"]["deep"] == deep["deep"]
    result = client.post(
        f"/threads/{thread_id}/runs/wait", json={"assistant_id": "agent", "input": {"topic": "x", **deep}}
    )
    assert result.status_code == 200 and result.json()["topic"] == "x and cats"
    run = runs_of(client, thread_id)[0]
    assert cast(dict, run)["kwargs"]["input"]["deep"] == deep["deep"]


@pytest.mark.parametrize("ttl", [1e13, 1e300, -1, 0])
def test_a_store_ttl_out_of_range_is_422(client: httpx.Client, ttl: float) -> None:
    response = client.put("/store/items", json={"namespace": ["ttl"], "key": "k", "value": {"a": 1}, "ttl": ttl})
    assert response.status_code == 422, response.text
    assert "ttl must be a positive number of minutes" in response.json()["detail"]
    put = client.put("/store/items", json={"namespace": ["ttl"], "key": "k", "value": {"a": 1}, "ttl": 10**9})
    assert put.status_code == 204, put.text


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("run.start", {"assistant_id": "agent", "input": {"deep": nested(MAX_NESTING)}}, "input"),
        ("run.start", {"assistant_id": "agent", "metadata": {"deep": nested(MAX_NESTING)}}, "metadata"),
        ("input.respond", {"interrupt_id": "x", "response": {"deep": nested(MAX_NESTING)}}, "response"),
    ],
)
def test_a_thread_protocol_command_nested_past_the_limit_is_refused(
    client: httpx.Client, method: str, params: dict, field: str
) -> None:
    thread_id = new_thread(client)
    response = client.post(f"/threads/{thread_id}/commands", json={"id": 1, "method": method, "params": params})
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["type"] == "error" and reply["error"] == "invalid_argument", reply
    assert reply["message"] == f"{field} is nested more than {MAX_NESTING} levels deep"
    assert runs_of(client, thread_id) == []


def test_a_thread_protocol_command_with_a_negative_id_is_answered_with_a_null_id(client: httpx.Client) -> None:
    thread_id = new_thread(client)
    command = {"id": -1, "method": "run.start", "params": {"assistant_id": "agent", "input": {"topic": "x"}}}
    reply = client.post(f"/threads/{thread_id}/commands", json=command).json()
    assert reply["type"] == "error" and reply["error"] == "invalid_argument", reply
    assert reply["id"] is None
    assert runs_of(client, thread_id) == []


@pytest.mark.parametrize("key", ["", "a b", "x;drop"])
def test_a_history_metadata_filter_key_the_checkpointer_cannot_take_is_422_naming_it(
    client: httpx.Client, key: str
) -> None:
    thread_id = new_thread(client)
    client.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "agent", "input": {"topic": "x"}})
    response = client.post(f"/threads/{thread_id}/history", json={"metadata": {key: 1}})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(f"metadata filter key {key!r} may hold only")
    # A key it can take still filters.
    assert client.post(f"/threads/{thread_id}/history", json={"metadata": {"step": 1}}).status_code == 200
