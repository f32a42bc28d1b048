"""A request that carries `Authorization` or `x-api-key` twice is refused on both edges, with
--api-key and with langgraph.json's custom auth alike (HTTP 400, gRPC INVALID_ARGUMENT, naming
the header), rather than one of the two being picked: which one a proxy in front checked is
not known."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from langgraph.gateway.v1 import runs_pb2, threads_pb2

from gateway.shared.util import repeated_credential
from tests._auth import ALICE, BOB, auth_gateway
from tests._server import GatewayProcess
from tests.conftest import make_stubs
from tests.http._bridge import BridgeProcess

KEY = "k3y"
Headers = list[tuple[str, str]]


def test_the_first_repeated_credential_is_named() -> None:
    assert repeated_credential([b"x-api-key", b"accept", b"x-api-key"]) == "x-api-key"
    assert repeated_credential(["Authorization", "x-api-key", "authorization"]) == "authorization"
    assert repeated_credential([b"authorization", b"x-api-key", b"cookie", b"cookie"]) is None


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(tmp_path_factory.mktemp("keyed") / "gateway.sqlite", extra_args=("--api-key", KEY)).start()
    yield proc
    proc.kill()


@pytest.fixture(scope="module")
def custom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, Path]]:
    proc, canary = auth_gateway(tmp_path_factory.mktemp("custom"))
    yield proc, canary
    proc.kill()


def http_refusal(url: str, headers: Headers) -> tuple[int, Any]:
    answer = httpx.post(f"{url}/threads/search", json={}, headers=headers, timeout=30)
    return answer.status_code, answer.json()


async def grpc_refusals(target: str, metadata: Headers) -> list[tuple[grpc.StatusCode, str]]:
    """The code and details of a unary call and of a streaming call with `metadata`."""
    refusals = []
    async with grpc.aio.insecure_channel(target) as channel:
        stubs = make_stubs(channel)
        try:
            await stubs.threads.SearchThreads(threads_pb2.SearchThreadsRequest(), metadata=tuple(metadata))
        except grpc.aio.AioRpcError as exc:
            refusals.append((exc.code(), exc.details() or ""))
        request = runs_pb2.CreateRunRequest(assistant_id="agent")
        request.input.struct_value.update({"topic": "x"})
        try:
            async for _ in stubs.runs.RunStream(request, metadata=tuple(metadata)):
                pass
        except grpc.aio.AioRpcError as exc:
            refusals.append((exc.code(), exc.details() or ""))
    return refusals


# Either order: the refusal must not depend on which copy a reader would have taken.
KEYED = {
    "two keys, the right one first": ([("x-api-key", KEY), ("x-api-key", "wrong")], "x-api-key"),
    "two keys, the right one last": ([("x-api-key", "wrong"), ("x-api-key", KEY)], "x-api-key"),
    "the same key twice": ([("x-api-key", KEY), ("x-api-key", KEY)], "x-api-key"),
    "two authorizations": (
        [("x-api-key", KEY), ("authorization", "Bearer a"), ("authorization", "Bearer b")],
        "authorization",
    ),
}
CUSTOM = {
    "two users": (
        [("authorization", ALICE["authorization"]), ("authorization", BOB["authorization"])],
        "authorization",
    ),
    "a user and a stranger": ([("authorization", "Bearer nobody"), *ALICE.items()], "authorization"),
    "two keys beside a user": ([*ALICE.items(), ("x-api-key", "a"), ("x-api-key", "b")], "x-api-key"),
}


@pytest.mark.parametrize(("headers", "name"), list(KEYED.values()), ids=list(KEYED))
def test_http_with_the_api_key_refuses_a_repeated_credential(
    keyed: GatewayProcess, headers: Headers, name: str
) -> None:
    status, body = http_refusal(keyed.http_url, headers)
    assert status == 400 and body == {"detail": f"{name} header is given more than once: send one"}


@pytest.mark.parametrize(("headers", "name"), list(KEYED.values()), ids=list(KEYED))
async def test_grpc_with_the_api_key_refuses_a_repeated_credential(
    keyed: GatewayProcess, headers: Headers, name: str
) -> None:
    refusals = await grpc_refusals(keyed.grpc_target, headers)
    expected = (grpc.StatusCode.INVALID_ARGUMENT, f"{name} metadata is given more than once: send one")
    assert refusals == [expected, expected]


@pytest.mark.parametrize(("headers", "name"), list(CUSTOM.values()), ids=list(CUSTOM))
def test_http_with_custom_auth_refuses_a_repeated_credential(
    custom: tuple[GatewayProcess, Path], headers: Headers, name: str
) -> None:
    status, body = http_refusal(custom[0].http_url, headers)
    assert status == 400 and body == {"detail": f"{name} header is given more than once: send one"}


@pytest.mark.parametrize(("headers", "name"), list(CUSTOM.values()), ids=list(CUSTOM))
async def test_grpc_with_custom_auth_refuses_a_repeated_credential(
    custom: tuple[GatewayProcess, Path], headers: Headers, name: str
) -> None:
    refusals = await grpc_refusals(custom[0].grpc_target, headers)
    expected = (grpc.StatusCode.INVALID_ARGUMENT, f"{name} metadata is given more than once: send one")
    assert refusals == [expected, expected]


def test_one_of_each_is_served(keyed: GatewayProcess, custom: tuple[GatewayProcess, Path]) -> None:
    assert http_refusal(keyed.http_url, [("x-api-key", KEY), ("authorization", "Bearer a")])[0] == 200
    assert http_refusal(custom[0].http_url, [*ALICE.items(), ("x-api-key", "a")])[0] == 200


def test_through_the_bridge_the_gateway_refuses_as_its_own_edge(custom: tuple[GatewayProcess, Path]) -> None:
    # The bridge authenticates no one: it forwards both headers, and the gateway refuses them.
    bridge = BridgeProcess(custom[0].grpc_target).start()
    try:
        status, body = http_refusal(bridge.http_url, list(CUSTOM["two users"][0]))
        assert status == 400 and body == {"detail": "authorization metadata is given more than once: send one"}
    finally:
        bridge.kill()


@pytest.mark.parametrize(("headers", "name"), [KEYED["two keys, the right one first"], CUSTOM["two users"]])
def test_connect_on_the_http_port_refuses_a_repeated_credential(
    keyed: GatewayProcess, custom: tuple[GatewayProcess, Path], headers: Headers, name: str
) -> None:
    # The gRPC API over Connect, on the HTTP port, goes through the gRPC port's interceptors.
    url = keyed.http_url if name == "x-api-key" else custom[0].http_url
    answer = httpx.post(f"{url}/langgraph.gateway.v1.ThreadsService/SearchThreads", json={}, headers=headers)
    body = answer.json()
    assert answer.status_code == 400 and (body["code"], body["message"]) == (
        "invalid_argument",
        f"{name} metadata is given more than once: send one",
    )
    assert "google.rpc.ErrorInfo" in [detail["type"] for detail in body["details"]]
