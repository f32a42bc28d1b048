"""The thread protocol under custom auth (tests/graphs/auth: each user sees only the threads they
own): a subscription to another user's thread is refused as every other route refuses it, with
404 / `not_found` / NOT_FOUND, on SSE, the WebSocket and the gRPC session, from the gateway's own
edge and the bridge's, on each backend; one opened before that thread existed ends once it does,
having sent nothing of it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import httpx
import orjson
import pytest
from langgraph.gateway.v1 import sessions_pb2, sessions_pb2_grpc
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests._auth import ALICE, BOB, auth_config, auth_gateway
from tests._server import GatewayProcess
from tests.conftest import BACKENDS, backend_args
from tests.http._bridge import BridgeProcess
from tests.http._sse import aiter_events

TIMEOUT = 30
CHANNELS = ["values", "lifecycle", "custom"]


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, BridgeProcess]]:
    """The auth gateway on each backend, and the bridge in front of it."""
    folder = tmp_path_factory.mktemp("protocol-auth")
    with backend_args(request.param) as args:
        proc, _ = auth_gateway(folder, *args)
        bridge = BridgeProcess(proc.grpc_target, config=str(auth_config(folder))).start()
        yield proc, bridge
        bridge.kill()
        proc.kill()


@pytest.fixture(params=["gateway", "bridge"])
def url(request: pytest.FixtureRequest, served: tuple[GatewayProcess, BridgeProcess]) -> str:
    gateway, bridge = served
    return gateway.http_url if request.param == "gateway" else bridge.http_url


async def _alices_thread(url: str, thread_id: str | None = None) -> str:
    async with httpx.AsyncClient(base_url=url, headers=ALICE, timeout=TIMEOUT) as alice:
        created = await alice.post("/threads", json={"thread_id": thread_id} if thread_id else {})
        assert created.status_code == 200, created.text
        return str(created.json()["thread_id"])


async def _alice_runs(url: str, thread_id: str) -> None:
    command = {"id": 1, "method": "run.start", "params": {"assistant_id": "agent", "input": {"topic": "x"}}}
    async with httpx.AsyncClient(base_url=url, headers=ALICE, timeout=TIMEOUT) as alice:
        reply = (await alice.post(f"/threads/{thread_id}/commands", json=command)).json()
        assert reply["type"] == "success", reply
        run_id = reply["result"]["run_id"]
        joined = await alice.get(f"/threads/{thread_id}/runs/{run_id}/join")
        assert joined.status_code == 200, joined.text


def _subscribe(cmd_id: int) -> str:
    return orjson.dumps({"id": cmd_id, "method": "subscription.subscribe", "params": {"channels": CHANNELS}}).decode()


async def test_sse_refuses_another_users_thread(url: str) -> None:
    thread_id = await _alices_thread(url)
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
        path = f"/threads/{thread_id}/stream/events"
        async with (
            asyncio.timeout(TIMEOUT),
            http.stream("POST", path, json={"channels": CHANNELS}, headers=BOB) as refused,
        ):
            # Read only once refused: an accepted stream never ends.
            assert refused.status_code == 404
            assert thread_id in orjson.loads(await refused.aread())["detail"]
        async with http.stream("POST", path, json={"channels": CHANNELS}, headers=ALICE) as own:
            assert own.status_code == 200
        # Commands are refused alike, as a command's error.
        command = {"id": 7, "method": "agent.getTree", "params": {}}
        reply = (await http.post(f"/threads/{thread_id}/commands", json=command, headers=BOB)).json()
        assert reply["type"] == "error" and reply["error"] == "not_found" and reply["id"] == 7, reply


async def test_sse_waiting_for_a_thread_another_user_creates_ends_with_not_found(url: str) -> None:
    thread_id = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=url, headers=BOB, timeout=TIMEOUT) as bob:
        # A thread not created yet may be subscribed to: a run.start may create it next.
        async with bob.stream("POST", f"/threads/{thread_id}/stream/events", json={"channels": CHANNELS}) as events:
            assert events.status_code == 200
            await _alices_thread(url, thread_id)
            await _alice_runs(url, thread_id)
            async with asyncio.timeout(TIMEOUT):
                received = [e async for e in aiter_events(events)]
    assert [(e.event, e.data["error"]) for e in received] == [("error", "not_found")]


async def _closed(socket: ClientConnection) -> ConnectionClosed:
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(TIMEOUT):
            while True:
                await socket.recv()
    return closed.value


async def test_websocket_refuses_another_users_thread(url: str) -> None:
    ws = url.replace("http://", "ws://")
    thread_id = await _alices_thread(url)
    async with connect(f"{ws}/threads/{thread_id}/stream/events", additional_headers=BOB) as socket:
        closed = await _closed(socket)
    assert closed.rcvd is not None and closed.rcvd.code == 4404
    # Opened before the thread existed, then subscribed once another user had created it.
    later = str(uuid.uuid4())
    async with connect(f"{ws}/threads/{later}/stream/events", additional_headers=BOB) as socket:
        await _alices_thread(url, later)
        await socket.send(_subscribe(1))
        reply = orjson.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))
        assert reply["id"] == 1 and reply["type"] == "error" and reply["error"] == "not_found", reply
    async with connect(f"{ws}/threads/{later}/stream/events", additional_headers=ALICE) as socket:
        await socket.send(_subscribe(1))
        reply = orjson.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))
        assert reply["type"] == "success", reply


async def test_websocket_subscription_waiting_for_another_users_thread_ends(url: str) -> None:
    thread_id = str(uuid.uuid4())
    ws = url.replace("http://", "ws://")
    async with connect(f"{ws}/threads/{thread_id}/stream/events", additional_headers=BOB) as socket:
        await socket.send(_subscribe(1))
        assert orjson.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))["type"] == "success"
        await _alices_thread(url, thread_id)
        await _alice_runs(url, thread_id)
        messages = []
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(TIMEOUT):
                while True:
                    messages.append(orjson.loads(await socket.recv()))
    assert [(m["type"], m["error"]) for m in messages] == [("error", "not_found")]


class _Session:
    def __init__(self, channel: grpc.aio.Channel, thread_id: str, headers: dict[str, str]) -> None:
        self._queue: asyncio.Queue[sessions_pb2.SessionRequest | None] = asyncio.Queue()
        stub = sessions_pb2_grpc.SessionsServiceStub(channel)
        self.call = stub.ThreadSession(self._requests(), metadata=tuple(headers.items()))
        self._queue.put_nowait(sessions_pb2.SessionRequest(id=1, open=sessions_pb2.OpenSession(thread_id=thread_id)))

    async def _requests(self) -> AsyncIterator[sessions_pb2.SessionRequest]:
        while (request := await self._queue.get()) is not None:
            yield request

    def send(self, cmd_id: int, **command: Any) -> None:
        self._queue.put_nowait(sessions_pb2.SessionRequest(id=cmd_id, **command))

    async def read(self) -> Any:
        async with asyncio.timeout(TIMEOUT):
            return await self.call.read()


@pytest.fixture
async def channel(served: tuple[GatewayProcess, BridgeProcess]) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(served[0].grpc_target) as opened:
        yield opened


async def test_grpc_session_refuses_another_users_thread(
    served: tuple[GatewayProcess, BridgeProcess], channel: grpc.aio.Channel
) -> None:
    url = served[0].http_url
    thread_id = await _alices_thread(url)
    bobs = _Session(channel, thread_id, BOB)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await bobs.read()
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND and thread_id in (refused.value.details() or "")
    alices = _Session(channel, thread_id, ALICE)
    assert (await alices.read()).result.opened.thread_id == thread_id
    alices.send(2, subscribe=sessions_pb2.Subscribe(channels=CHANNELS))
    assert (await alices.read()).result.HasField("subscribed")
    alices.call.cancel()
    # Opened before the thread existed: the subscription is refused once another user created it.
    later = str(uuid.uuid4())
    bobs = _Session(channel, later, BOB)
    assert (await bobs.read()).result.opened.thread_id == later
    await _alices_thread(url, later)
    bobs.send(2, subscribe=sessions_pb2.Subscribe(channels=CHANNELS))
    refused_sub = await bobs.read()
    assert refused_sub.error.id == 2 and refused_sub.error.code == "not_found", refused_sub
    bobs.call.cancel()


async def test_grpc_subscription_waiting_for_another_users_thread_ends(
    served: tuple[GatewayProcess, BridgeProcess], channel: grpc.aio.Channel
) -> None:
    url = served[0].http_url
    thread_id = str(uuid.uuid4())
    bobs = _Session(channel, thread_id, BOB)
    assert (await bobs.read()).result.opened.thread_id == thread_id
    bobs.send(2, subscribe=sessions_pb2.Subscribe(channels=CHANNELS))
    assert (await bobs.read()).result.HasField("subscribed")
    await _alices_thread(url, thread_id)
    await _alice_runs(url, thread_id)
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        while True:
            response = await bobs.read()
            assert not response.HasField("events"), response
    assert ended.value.code() == grpc.StatusCode.NOT_FOUND
