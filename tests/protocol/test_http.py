"""The protocol's HTTP and WebSocket routes refuse what is malformed, with the error naming it,
and keep to the API key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests._server import GatewayProcess
from tests.protocol.conftest import PROTOCOL_CONFIG


def _post(url: str, path: str, body: object) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(url + path, content=content, headers={"content-type": "application/json"}, timeout=30)


@pytest.mark.parametrize(
    ("body", "status", "reply"),
    [
        (b"{nope", 400, {"detail": "Invalid JSON body"}),
        ({"method": "run.start"}, 400, "invalid_argument"),
        ({"id": 1, "method": "state.fork", "params": {}}, 200, "unknown_command"),
        ({"id": 2, "method": "run.start", "params": {}}, 200, "invalid_argument"),
        ({"id": 3, "method": "run.start", "params": {"assistant_id": "nope"}}, 200, "invalid_argument"),
        ({"id": 4, "method": "subscription.subscribe", "params": {"channels": ["values"]}}, 200, "not_supported"),
        ({"id": 5, "method": "input.respond", "params": {"interrupt_id": "x", "response": 1}}, 200, "not_found"),
        ({"id": 6, "method": "agent.getTree", "params": {}}, 200, "not_found"),
        ({"id": 7, "method": "run.cancel", "params": {"action": "stop"}}, 200, "invalid_argument"),
    ],
)
def test_commands_refuse_what_is_malformed(server: str, body: object, status: int, reply: object) -> None:
    response = _post(server, f"/threads/{uuid.uuid4()}/commands", body)
    assert response.status_code == status, response.text
    if isinstance(reply, dict):
        assert response.json() == reply
    else:
        assert response.json()["type"] == "error" and response.json()["error"] == reply, response.json()
        assert status == 200 or response.json()["detail"] == response.json()["message"]
        assert response.json()["id"] == (body.get("id") if isinstance(body, dict) else None)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[", "Invalid JSON body"),
        ({}, "channels is required"),
        ({"channels": []}, "channels is required"),
        ({"channels": ["values", "debug"]}, "unsupported entries: debug"),
        ({"channels": ["values"], "since": -1}, "since must be a non-negative integer"),
        ({"channels": ["values"], "since": True}, "since must be a non-negative integer"),
        ({"channels": ["values"], "depth": "2"}, "depth must be a non-negative integer"),
        ({"channels": ["values"], "namespaces": ["a"]}, "namespaces must be an array"),
    ],
)
def test_event_streams_refuse_bad_filters(server: str, body: object, words: str) -> None:
    response = _post(server, f"/threads/{uuid.uuid4()}/stream/events", body)
    assert response.status_code == 400 and words in response.json()["detail"], response.text


@pytest.mark.parametrize("last_id", ["18446744073709551616", "9" * 5000])
def test_event_streams_refuse_a_last_event_id_out_of_range(server: str, last_id: str) -> None:
    path = f"{server}/threads/{uuid.uuid4()}/stream/events"
    with httpx.stream(
        "POST", path, json={"channels": ["values"]}, headers={"Last-Event-ID": last_id}, timeout=30
    ) as response:
        assert response.status_code == 422 and b"last-event-id" in response.read()


def test_thread_ids_are_uuids(server: str) -> None:
    assert _post(server, "/threads/nope/commands", {"id": 1, "method": "agent.getTree"}).status_code == 422
    assert _post(server, "/threads/nope/stream/events", {"channels": ["values"]}).status_code == 422


async def test_websocket_answers_bad_frames_and_refuses_bad_ids(server: str) -> None:
    url = server.replace("http://", "ws://")
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{url}/threads/nope/stream/events"):
            pass
    assert refused.value.response.status_code == 422
    async with connect(f"{url}/threads/{uuid.uuid4()}/stream/events") as socket:
        await socket.send("{nope")
        assert orjson.loads(await socket.recv()) == {
            "type": "error",
            "id": None,
            "error": "invalid_argument",
            "message": "Protocol commands must be valid JSON.",
        }
        await socket.send(
            orjson.dumps({"id": 3, "method": "subscription.subscribe", "params": {"channels": ["x"]}}).decode()
        )
        reply = orjson.loads(await socket.recv())
        assert reply["id"] == 3 and reply["error"] == "invalid_argument"


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(
        tmp_path_factory.mktemp("locked") / "gateway.sqlite", config=PROTOCOL_CONFIG, extra_args=("--api-key", "k3y")
    ).start()
    yield proc
    proc.kill()


async def test_api_key_guards_streams_and_sockets(locked: GatewayProcess) -> None:
    path = f"/threads/{uuid.uuid4()}/stream/events"
    assert _post(locked.http_url, path, {"channels": ["values"]}).status_code == 401
    url = locked.http_url.replace("http://", "ws://") + path
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url):
            pass
    assert refused.value.response.status_code == 401
    async with connect(url, additional_headers={"x-api-key": "k3y"}) as socket:
        await socket.send(
            orjson.dumps({"id": 1, "method": "subscription.subscribe", "params": {"channels": ["values"]}}).decode()
        )
        assert orjson.loads(await socket.recv())["type"] == "success"
