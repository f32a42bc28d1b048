"""Property-based, on the HTTP port: random requests to every RPC over Connect (JSON and binary)
and gRPC-Web, and bytes that are no request at all, get an answer in the protocol's own form
with a code the gRPC port would give, never a 500 / `internal`, and the server keeps serving."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.protobuf import descriptor, json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._server import GatewayProcess
from tests.rpc.test_fuzz import KNOWN_IDS, METHODS, requests

# The Connect names of the codes the gRPC fuzz test expects.
EXPECTED = {"invalid_argument", "not_found", "failed_precondition", "already_exists", "resource_exhausted"}
GRPC_EXPECTED = {"3", "5", "9", "6", "8"}
PROTOCOLS = ["connect-json", "connect-proto", "grpc-web", "grpc-web+json"]


@pytest.fixture(scope="module")
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.http_url, timeout=30) as client:
        thread = client.post("/threads", json={}).json()["thread_id"]
        KNOWN_IDS.append(thread)
        yield client


def _frames(body: bytes) -> list[tuple[int, bytes]]:
    out, at = [], 0
    while at + 5 <= len(body):
        flags, size = body[at], struct.unpack_from(">I", body, at + 1)[0]
        out.append((flags, body[at + 5 : at + 5 + size]))
        at += 5 + size
    return out


def _check(path: str, method: descriptor.MethodDescriptor, protocol: str, response: httpx.Response) -> None:
    assert response.status_code != 500, f"{path} {protocol}: {response.status_code} {response.text[:300]}"
    streaming = method.server_streaming or protocol.startswith("grpc-web")
    if not streaming:
        if response.status_code != 200:
            code = response.json()["code"]
            assert code in EXPECTED, f"{path} {protocol}: {code}: {response.json().get('message')}"
            assert response.json().get("message")
        return
    assert response.status_code == 200, f"{path} {protocol}: {response.status_code}"
    frames = _frames(response.content)
    assert frames, f"{path} {protocol}: no envelope"
    flags, last = frames[-1]
    if protocol.startswith("connect"):
        assert flags == 0x02, f"{path}: the stream did not end with its end envelope"
        error = json.loads(last).get("error")
        if error is not None:
            assert error["code"] in EXPECTED, f"{path} {protocol}: {error}"
    else:
        assert flags == 0x80, f"{path}: the stream did not end with its trailers"
        trailers = dict(line.split(": ", 1) for line in last.decode().split("\r\n") if line)
        assert trailers["grpc-status"] in GRPC_EXPECTED | {"0"}, f"{path} {protocol}: {trailers}"


# What a request that has no JSON form (NaN or an infinity in a Value, a Timestamp past the
# calendar) goes as instead of each JSON protocol.
_BINARY = {"connect-json": "connect-proto", "grpc-web+json": "grpc-web"}


def _post(http: httpx.Client, path: str, method: descriptor.MethodDescriptor, protocol: str, request: Any) -> None:
    data = b""
    if protocol in _BINARY:
        try:
            data = json_format.MessageToJson(request).encode()
        except json_format.SerializeToJsonError:
            protocol = _BINARY[protocol]
    if not data:
        data = request.SerializeToString()
    if protocol.startswith("connect"):
        codec = "json" if protocol.endswith("json") else "proto"
        if method.server_streaming:
            headers = {"content-type": f"application/connect+{codec}"}
            data = struct.pack(">BI", 0, len(data)) + data
        else:
            headers = {"content-type": f"application/{codec}"}
    else:
        headers = {"content-type": "application/grpc-web+json" if protocol.endswith("json") else "application/grpc-web"}
        data = struct.pack(">BI", 0, len(data)) + data
    headers["connect-timeout-ms"] = "5000"
    _check(path, method, protocol, http.post(path, content=data, headers=headers))


@pytest.mark.parametrize(("service", "method"), METHODS, ids=[f"{s.name}.{m.name}" for s, m in METHODS])
def test_random_requests_over_connect_and_grpc_web(
    http: httpx.Client, service: descriptor.ServiceDescriptor, method: descriptor.MethodDescriptor
) -> None:
    path = f"/{service.full_name}/{method.name}"

    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(requests(method.input_type, tuple(KNOWN_IDS)), st.sampled_from(PROTOCOLS))
    def check(request: Any, protocol: str) -> None:
        _post(http, path, method, protocol, request)

    check()
    assert http.get("/ok").json() == {"ok": True}


@pytest.mark.parametrize(("service", "method"), METHODS[::3], ids=[f"{s.name}.{m.name}" for s, m in METHODS[::3]])
def test_bytes_that_are_no_request(
    http: httpx.Client, service: descriptor.ServiceDescriptor, method: descriptor.MethodDescriptor
) -> None:
    path = f"/{service.full_name}/{method.name}"

    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        st.binary(max_size=64),
        st.sampled_from(
            ["application/json", "application/proto", "application/connect+json", "application/grpc-web",
             "application/grpc-web-text"]
        ),
        st.sampled_from([{}, {"content-encoding": "gzip"}, {"connect-timeout-ms": "x"}, {"grpc-timeout": "9Q"},
                         {"connect-timeout-ms": b"\xb3"}, {"grpc-timeout": b"\xb3S"}]),
    )  # fmt: skip
    def check(data: bytes, content_type: str, extra: dict[str, str | bytes]) -> None:
        response = http.post(path, content=data, headers={"content-type": content_type, **extra})
        assert response.status_code != 500, f"{path} {content_type}: {response.text[:300]}"
        if response.headers.get("content-type") == "application/json" and response.status_code != 200:
            assert response.json()["code"] in EXPECTED | {"unimplemented"}, response.text

    check()
    assert http.get("/ok").json() == {"ok": True}
