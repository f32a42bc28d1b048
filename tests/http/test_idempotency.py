"""The Idempotency-Key header on POST /threads and the run-create routes: the HTTP edge's
request_id, served directly and through the bridge (which passes it on over gRPC)."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import httpx
import pytest

from tests._server import GatewayProcess
from tests.http._bridge import BridgeProcess
from tests.http._sse import parse

BODY = {"assistant_id": "agent", "input": {"topic": "x"}}


@pytest.fixture(params=["direct", "bridge"])
def client(request: pytest.FixtureRequest, gateway: GatewayProcess) -> Iterator[httpx.Client]:
    bridge = None
    url = gateway.http_url
    if request.param == "bridge":
        bridge = BridgeProcess(gateway.grpc_target).start()
        url = bridge.http_url
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            yield http
    finally:
        if bridge is not None:
            bridge.kill()


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def test_a_repeated_post_with_the_same_key_gets_what_the_first_made(client: httpx.Client) -> None:
    key = str(uuid4())
    thread = client.post("/threads", json={"metadata": {"k": 1}}, headers=keyed(key)).json()
    again = client.post("/threads", json={"metadata": {"k": 1}}, headers=keyed(key))
    assert again.status_code == 200 and again.json()["thread_id"] == thread["thread_id"]
    path = f"/threads/{thread['thread_id']}/runs"
    run_key = str(uuid4())
    run = client.post(path, json=BODY, headers=keyed(run_key)).json()
    assert client.post(path, json=BODY, headers=keyed(run_key)).json()["run_id"] == run["run_id"]
    waited = client.post(f"{path}/wait", json=BODY, headers=keyed(run_key))
    assert waited.json()["joke"] == "This is a joke about x and cats"
    assert waited.headers["content-location"].endswith(run["run_id"])
    streamed = parse(client.post(f"{path}/stream", json=BODY, headers=keyed(run_key)).content)
    assert streamed[0].data["run_id"] == run["run_id"] and streamed[-1].event == "values"
    assert [r["run_id"] for r in client.get(path).json()] == [run["run_id"]]
    # A stateless run's key, on its own routes.
    stateless_key = str(uuid4())
    first = client.post("/runs", json={**BODY, "on_completion": "keep"}, headers=keyed(stateless_key)).json()
    again = client.post("/runs", json={**BODY, "on_completion": "keep"}, headers=keyed(stateless_key))
    assert again.json()["run_id"] == first["run_id"]
    assert again.headers["content-location"] == f"/threads/{first['thread_id']}/runs/{first['run_id']}"


def test_a_key_with_another_body_is_409_and_a_key_not_a_uuid_422(client: httpx.Client) -> None:
    key = str(uuid4())
    client.post("/threads", json={}, headers=keyed(key)).raise_for_status()
    reused = client.post("/threads", json={"metadata": {"other": True}}, headers=keyed(key))
    assert reused.status_code == 409 and "request_id" in reused.text
    for path in ("/threads", "/runs", "/runs/wait", "/runs/stream"):
        response = client.post(path, json=BODY, headers=keyed("nope"))
        assert response.status_code == 422 and "Idempotency-Key 'nope' is not a UUID" in response.text, path
