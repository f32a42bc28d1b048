"""The same routes served by `python -m gateway bridge`, a separate process that speaks gRPC to
the gateway: streams, runs, threads and assistants, with httpx and the Python SDK."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from langgraph_sdk import get_sync_client

from gateway.bridge.errors import raise_for_status
from gateway.bridge.session import session_failure
from gateway.shared.errors import GatewayError
from tests._normalise import Normaliser
from tests._server import GRAPH_COUNT, ROOT, GatewayProcess
from tests.http._bridge import BridgeProcess
from tests.http._sse import Event, assert_ids_increase, iter_events, parse
from tests.http.test_stream import wait_for_status

JOKE = {"topic": "x and cats", "joke": "This is a joke about x and cats"}


@pytest.fixture
def remote(bridge: BridgeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=bridge.http_url, timeout=30) as client:
        yield client


def new_thread(client: httpx.Client, **body: object) -> str:
    return str(client.post("/threads", json=body).json()["thread_id"])


def stream(client: httpx.Client, path: str, body: dict) -> tuple[httpx.Response, list[Event]]:
    with client.stream("POST", path, json=body) as response:
        raw = b"".join(response.iter_raw())
    return response, parse(raw)


def comparable(events: list[Event]) -> list[object]:
    return Normaliser()([(e.event.split("|")[0], e.data) for e in events])


@pytest.mark.parametrize(
    "body",
    [
        {"assistant_id": "agent", "input": {"topic": "x"}, "stream_mode": ["values", "updates"]},
        {"assistant_id": "chat", "input": {"topic": "x"}, "stream_mode": ["messages-tuple", "custom"]},
        {"assistant_id": "chat", "input": {"topic": "x"}, "stream_mode": "messages"},
        {"assistant_id": "subgraphs", "input": {"foo": "x"}, "stream_mode": "updates", "stream_subgraphs": True},
        {"assistant_id": "failing", "input": {}, "stream_mode": "updates"},
    ],
    ids=["values+updates", "messages-tuple", "messages", "subgraphs", "error"],
)
def test_streams_match_the_gateways_own(remote: httpx.Client, http: httpx.Client, body: dict) -> None:
    direct_thread, remote_thread = new_thread(http), new_thread(remote)
    _, direct = stream(http, f"/threads/{direct_thread}/runs/stream", body)
    response, bridged = stream(remote, f"/threads/{remote_thread}/runs/stream", body)
    run_id = bridged[0].data["run_id"]
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["location"] == f"/threads/{remote_thread}/runs/{run_id}/stream"
    assert comparable(bridged) == comparable(direct)
    assert [e.event.count("|") for e in bridged] == [e.event.count("|") for e in direct]
    assert_ids_increase(bridged)


def test_stateless_stream_and_wait(remote: httpx.Client) -> None:
    response, events = stream(remote, "/runs/stream", {"assistant_id": "agent", "input": {"topic": "x"}})
    run_id = events[0].data["run_id"]
    assert response.headers["location"] == f"/runs/{run_id}/stream"
    assert events[-1].data == JOKE
    assert remote.post("/runs/wait", json={"assistant_id": "agent", "input": {"topic": "x"}}).json() == JOKE
    failed = remote.post("/runs/wait", json={"assistant_id": "failing", "input": {}}).json()
    assert failed == {"__error__": {"error": "ValueError", "message": "the node failed on purpose"}}


def test_request_errors_keep_their_status(remote: httpx.Client) -> None:
    assert remote.post("/runs/stream", json={"assistant_id": "nope"}).status_code == 422
    assert remote.post("/runs/stream", json={"assistant_id": "agent", "stream_mode": "bogus"}).status_code == 422
    missing = "00000000-0000-0000-0000-000000000000"
    assert remote.post(f"/threads/{missing}/runs/stream", json={"assistant_id": "agent"}).status_code == 404
    assert remote.post("/runs/wait", json={"assistant_id": missing}).status_code == 404
    both = {"assistant_id": "agent", "config": {"configurable": {"a": 1}}, "context": {"b": 2}}
    assert remote.post("/runs/stream", json=both).status_code == 400
    assert remote.get(f"/threads/{missing}").status_code == 404


def test_background_run_join_and_replay(remote: httpx.Client) -> None:
    thread_id = new_thread(remote)
    run = remote.post(
        f"/threads/{thread_id}/runs",
        json={"assistant_id": "slow", "input": {"n": 30, "delay": 0.01}, "stream_mode": "custom"},
    ).json()
    assert remote.get(f"/threads/{thread_id}/runs/{run['run_id']}/join").json()["ticks"] == 30
    path = f"/threads/{thread_id}/runs/{run['run_id']}/stream"
    with remote.stream("GET", path, headers={"Last-Event-ID": "-1"}) as response:
        replay = parse(b"".join(response.iter_raw()))
    assert [e.data["tick"] for e in replay if e.event == "custom"] == list(range(30))
    runs = remote.get(f"/threads/{thread_id}/runs").json()
    assert [r["run_id"] for r in runs] == [run["run_id"]] and runs[0]["status"] == "success"
    assert remote.get(f"/threads/{thread_id}/runs/{run['run_id']}").json()["kwargs"]["stream_mode"] == ["custom"]


def test_cancel_and_disconnect(remote: httpx.Client) -> None:
    thread_id = new_thread(remote)
    body = {"assistant_id": "slow", "input": {"n": 400, "delay": 0.05}, "stream_mode": "custom"}
    run_id = remote.post(f"/threads/{thread_id}/runs", json=body).json()["run_id"]
    assert remote.post(f"/threads/{thread_id}/runs/{run_id}/cancel").status_code == 202
    assert wait_for_status(remote, thread_id, run_id, "interrupted", "success") == "interrupted"
    assert remote.post(f"/threads/{thread_id}/runs/{run_id}/cancel").status_code == 404

    with remote.stream("POST", f"/threads/{thread_id}/runs/stream", json={**body, "on_disconnect": "cancel"}) as r:
        run_id = r.headers["content-location"].rsplit("/", 1)[1]
        next(e for e in iter_events(r) if e.event == "custom")
    assert wait_for_status(remote, thread_id, run_id, "interrupted", "success") == "interrupted"


def test_threads_state_history_and_assistants(remote: httpx.Client) -> None:
    thread_id = new_thread(remote, metadata={"via": "bridge"})
    assert (
        remote.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "agent", "input": {"topic": "x"}}).json()
        == JOKE
    )
    thread = remote.get(f"/threads/{thread_id}").json()
    assert thread["values"] == JOKE and thread["status"] == "idle" and thread["metadata"]["via"] == "bridge"
    state = remote.get(f"/threads/{thread_id}/state").json()
    assert state["values"] == JOKE and state["checkpoint"]["thread_id"] == thread_id
    history = remote.post(f"/threads/{thread_id}/history", json={"limit": 10}).json()
    assert len(history) == 4 and history[0]["checkpoint_id"] == state["checkpoint_id"]
    older = remote.get(f"/threads/{thread_id}/state/{history[2]['checkpoint_id']}").json()
    assert older["values"] == {"topic": "x"}
    found = remote.post("/threads/search", json={"metadata": {"via": "bridge"}}).json()
    assert thread_id in [t["thread_id"] for t in found]
    assert remote.post("/threads/count", json={"metadata": {"via": "bridge"}}).json() >= 1
    assert remote.delete(f"/threads/{thread_id}").status_code == 204
    assert remote.get(f"/threads/{thread_id}").status_code == 404

    agent = remote.get("/assistants/fe096781-5601-53d2-b2f6-0d3403f7e9ca").json()
    assert agent["graph_id"] == "agent" and agent["metadata"] == {"created_by": "system"}
    # The system assistants: other tests make assistants of their own.
    system = {"metadata": {"created_by": "system"}}
    chat = remote.post("/assistants/search", json={"graph_id": "chat", **system}).json()
    assert [a["graph_id"] for a in chat] == ["chat"]
    assert remote.post("/assistants/count", json=system).json() == GRAPH_COUNT


def test_thread_patch_state_update_stream_graph_and_schemas(remote: httpx.Client, http: httpx.Client) -> None:
    thread_id = new_thread(remote)
    patched = remote.patch(f"/threads/{thread_id}", json={"metadata": {"k": 1}})
    assert patched.status_code == 200 and patched.json()["metadata"] == {"k": 1}
    with remote.stream("GET", f"/threads/{thread_id}/stream", params={"stream_modes": "state_update"}) as events:
        assert events.status_code == 200
        remote.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "agent", "input": {"topic": "x"}})
        updated = remote.post(f"/threads/{thread_id}/state", json={"values": {"topic": "y"}}).json()
        assert updated["checkpoint"]["thread_id"] == thread_id and updated["checkpoint_id"]
        first = next(iter_events(events))
    assert first.event == "state_update" and first.data["state"]["values"]["topic"] == "y"
    assert remote.get(f"/threads/{thread_id}/state").json()["metadata"]["source"] == "update"
    assert remote.get("/threads/00000000-0000-0000-0000-000000000000/stream").status_code == 404
    for path in ("/assistants/agent/graph?xray=1", "/assistants/fe096781-5601-53d2-b2f6-0d3403f7e9ca/schemas"):
        assert remote.get(path).json() == http.get(path).json()


def test_python_sdk_through_the_bridge(bridge: BridgeProcess) -> None:
    client = get_sync_client(url=bridge.http_url)
    thread = client.threads.create()
    parts = list(
        client.runs.stream(thread["thread_id"], "custom", input={"query": "q"}, stream_mode=["custom", "updates"])
    )
    assert [p.event for p in parts] == ["metadata", "custom", "custom", "updates"]
    run = client.runs.create(thread["thread_id"], "agent", input={"topic": "x"})
    assert client.runs.join(thread["thread_id"], run["run_id"]) == JOKE
    joined = list(client.runs.join_stream(thread["thread_id"], run["run_id"], last_event_id="0"))
    assert [p.event for p in joined] == ["metadata", "values", "values", "values"]
    assert list(client.runs.stream(None, "agent", input={"topic": "x"}))[-1].data == JOKE


def test_api_key_through_the_bridge(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path / "db.sqlite", extra_args=("--api-key", "k3y")).start()
    bridge = BridgeProcess(gateway.grpc_target, api_key="k3y").start()
    try:
        with httpx.Client(base_url=bridge.http_url) as client:
            assert client.post("/threads", json={}).status_code == 401
            assert client.get("/ok").status_code == 200
            ok = client.post(
                "/runs/wait", json={"assistant_id": "agent", "input": {"topic": "x"}}, headers={"x-api-key": "k3y"}
            )
            assert ok.json() == JOKE
    finally:
        bridge.kill()
        gateway.kill()


@pytest.mark.parametrize(
    ("code", "details", "status"),
    [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "Thread t already has 2 queued runs (the limit is 2).", 429),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "CLIENT: Sent message larger than max (68157455 vs. 67108864)", 413),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "SERVER: Received message larger than max (68157455 vs. 67108864)", 413),
        (grpc.StatusCode.OUT_OF_RANGE, "the events of run r after 1 up to 9 are no longer kept", 410),
        (grpc.StatusCode.DATA_LOSS, "", 502),
    ],
)
def test_gateway_statuses_become_http_statuses(code: grpc.StatusCode, details: str, status: int) -> None:
    error = grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)
    with pytest.raises(GatewayError) as raised:
        raise_for_status(error)
    assert raised.value.http_status == status and raised.value.message


@pytest.mark.parametrize(
    ("code", "details", "debug", "failed"),
    [
        (grpc.StatusCode.OUT_OF_RANGE, "the events are no longer kept", None, "expired"),
        (grpc.StatusCode.INTERNAL, "internal error (incident 0123456789ab)", None, "internal"),
        # grpc.aio's own, for a command written as the gateway ended the session (grpc/grpc#36066).
        (
            grpc.StatusCode.INTERNAL,
            "Internal error from Core",
            'Failed "execute_batch": (<grpc._cython.cygrpc.SendMessageOperation object at 0x7f>,)',
            "unavailable",
        ),
    ],
)
def test_a_bridged_session_ends_as_the_gateway_ended_it(
    code: grpc.StatusCode, details: str, debug: str | None, failed: str
) -> None:
    error = grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, debug)
    assert session_failure(error).code == failed


def test_the_bridge_loads_no_run_core_langgraph_or_sqlite() -> None:
    # What the bridge's modules import, in a fresh interpreter.
    script = (
        "import sys, gateway.cli, gateway.http.server, gateway.bridge.app as remote;"
        "remote.create_remote_app('127.0.0.1:1');"
        "print('\\n'.join(sorted(sys.modules)))"
    )
    loaded = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, cwd=ROOT)
    modules = loaded.stdout.split()
    forbidden = [
        m
        for m in modules
        if m.startswith(("gateway.core", "gateway.storage", "langchain", "sqlite3", "_sqlite3", "aiosqlite"))
        # `langgraph` itself is the namespace package the stubs (langgraph.gateway) live in.
        or (m.startswith("langgraph.") and not m.startswith("langgraph.gateway"))
    ]
    assert forbidden == []
    assert "grpc" in modules and "starlette" in modules


def test_values_too_deep_for_protobuf_are_the_clients_error(remote: httpx.Client) -> None:
    # Within the HTTP API's 100 levels, past protobuf's: 422 naming the field, not a 500.
    deep: list[object] = []
    for _ in range(60):
        deep = [deep]
    answer = remote.post("/runs/wait", json={"assistant_id": "agent", "input": deep})
    assert answer.status_code == 422 and "input" in answer.json()["detail"]
    thread_id = new_thread(remote)
    answer = remote.post(
        f"/threads/{thread_id}/runs/crons", json={"assistant_id": "agent", "schedule": "0 * * * *", "input": deep}
    )
    assert answer.status_code == 422


def test_cron_fields_of_the_wrong_type_are_the_clients_error(remote: httpx.Client) -> None:
    cron = {"assistant_id": "agent", "schedule": "0 0 * * *"}
    for name, value in (("on_run_completed", {}), ("on_run_completed", ["keep"]), ("config", "x")):
        answer = remote.post("/runs/crons", json={**cron, name: value})
        assert answer.status_code == 422 and name in answer.json()["detail"], answer.text


def test_a_version_no_assistant_can_have_is_not_found(remote: httpx.Client, http: httpx.Client) -> None:
    # The gateway is shared: another graph than the ones other tests count assistants of, and
    # the assistant deleted afterwards.
    assistant_id = remote.post("/assistants", json={"graph_id": "nested"}).json()["assistant_id"]
    try:
        for client in (remote, http):
            for version in (0, -(2**35), 2**31):
                answer = client.post(f"/assistants/{assistant_id}/latest", json={"version": version})
                assert answer.status_code == 404, (version, answer.text)
    finally:
        http.delete(f"/assistants/{assistant_id}")
