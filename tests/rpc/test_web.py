"""The gRPC API on the HTTP port: Connect (JSON and binary, unary and server-streaming) and
gRPC-Web (binary and text), from httpx and plain curl over HTTP/1.1, against a real gateway."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.rpc import error_details_pb2
from langgraph.gateway.v1 import assistants_pb2, runs_pb2

from tests._server import GatewayProcess

RUNS = "/langgraph.gateway.v1.RunsService"
THREADS = "/langgraph.gateway.v1.ThreadsService"
ASSISTANTS = "/langgraph.gateway.v1.AssistantsService"


@pytest.fixture(scope="module")
def web_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(tmp_path_factory.mktemp("web") / "gateway.sqlite").start()
    yield proc
    proc.kill()


def envelope(data: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(data)) + data


def envelopes(body: bytes) -> list[tuple[int, bytes]]:
    out, at = [], 0
    while at < len(body):
        flags, size = body[at], struct.unpack_from(">I", body, at + 1)[0]
        out.append((flags, body[at + 5 : at + 5 + size]))
        at += 5 + size
    assert at == len(body), "the body ends inside an envelope"
    return out


def run_request(**fields: Any) -> dict[str, Any]:
    return {"assistant_id": "agent", "input": {"topic": "ice cream"}, **fields}


def grpc_web_trailers(data: bytes) -> dict[str, str]:
    lines = [line for line in data.decode().split("\r\n") if line]
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in lines)}


async def test_connect_unary_json_and_binary(web_gateway: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=web_gateway.http_url) as http:
        found = await http.post(
            f"{ASSISTANTS}/SearchAssistants",
            json={"graph_id": "agent"},
            headers={"connect-protocol-version": "1"},
        )
        assert found.status_code == 200, found.text
        assert found.headers["content-type"] == "application/json"
        assert [a["graphId"] for a in found.json()["assistants"]] == ["agent"]

        request = assistants_pb2.SearchAssistantsRequest(graph_id="chat").SerializeToString()
        binary = await http.post(
            f"{ASSISTANTS}/SearchAssistants", content=request, headers={"content-type": "application/proto"}
        )
        assert binary.status_code == 200
        answer = assistants_pb2.SearchAssistantsResponse.FromString(binary.content)
        assert [a.graph_id for a in answer.assistants] == ["chat"]


async def test_connect_unary_errors_have_connect_codes_and_statuses(web_gateway: GatewayProcess) -> None:
    missing = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=web_gateway.http_url) as http:
        gone = await http.post(f"{THREADS}/GetThread", json={"thread_id": missing})
        assert gone.status_code == 404
        assert gone.json()["code"] == "not_found" and missing in gone.json()["message"]
        bad = await http.post(f"{THREADS}/GetThread", json={"thread_id": "not-a-uuid"})
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_argument"
        garbled = await http.post(
            f"{THREADS}/GetThread", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert garbled.status_code == 400 and garbled.json()["code"] == "invalid_argument"
        unknown = await http.post("/langgraph.gateway.v1.ThreadsService/NoSuchMethod", json={})
        assert unknown.status_code == 501 and unknown.json()["code"] == "unimplemented"
        # The thread session reads a stream of requests: not something HTTP/1.1 carries.
        session = await http.post(
            "/langgraph.gateway.v1.SessionsService/ThreadSession",
            content=envelope(b"{}"),
            headers={"content-type": "application/connect+json"},
        )
        (flags, end), *_ = envelopes(session.content)
        assert flags == 2 and json.loads(end)["error"]["code"] == "unimplemented"
        # Not a protocol this port speaks.
        other = await http.post(f"{THREADS}/GetThread", content=b"", headers={"content-type": "text/plain"})
        assert other.status_code == 415


async def test_connect_streams_a_run_with_two_modes(web_gateway: GatewayProcess) -> None:
    body = run_request(stream_mode=["STREAM_MODE_VALUES", "STREAM_MODE_UPDATES"])
    async with httpx.AsyncClient(base_url=web_gateway.http_url) as http:
        reply = await http.post(
            f"{RUNS}/RunStream",
            content=envelope(json.dumps(body).encode()),
            headers={"content-type": "application/connect+json"},
        )
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/connect+json"
    frames = envelopes(reply.content)
    *events, (end_flags, end) = frames
    assert end_flags == 2 and json.loads(end) == {}
    kinds = [next(k for k in json.loads(data) if k != "eventId") for _, data in events]
    assert kinds[0] == "metadata" and kinds[-1] == "end"
    assert "values" in kinds and "updates" in kinds
    last_values = [json.loads(data)["values"]["json"] for _, data in events if "values" in json.loads(data)][-1]
    assert json.loads(last_values) == {"topic": "ice cream and cats", "joke": "This is a joke about ice cream and cats"}


async def test_connect_binary_stream_matches_the_generated_messages(web_gateway: GatewayProcess) -> None:
    request = runs_pb2.CreateRunRequest(assistant_id="agent", stream_mode=[runs_pb2.STREAM_MODE_UPDATES])
    request.input.struct_value.update({"topic": "tea"})
    async with httpx.AsyncClient(base_url=web_gateway.http_url) as http:
        reply = await http.post(
            f"{RUNS}/RunStreamBatch",
            content=envelope(request.SerializeToString()),
            headers={"content-type": "application/connect+proto"},
        )
    *batches, (end_flags, _) = envelopes(reply.content)
    assert end_flags == 2
    events = [event for _, data in batches for event in runs_pb2.RunEventBatch.FromString(data).events]
    assert events[0].WhichOneof("event") == "metadata"
    assert [e.WhichOneof("event") for e in events[1:]] == ["updates", "updates", "end"]
    assert events[-1].end.status == runs_pb2.RUN_STATUS_SUCCESS


async def test_a_stream_error_ends_the_stream_with_the_code(web_gateway: GatewayProcess) -> None:
    body = json.dumps(run_request(assistant_id=str(uuid.uuid4()))).encode()
    async with httpx.AsyncClient(base_url=web_gateway.http_url) as http:
        connect = await http.post(
            f"{RUNS}/RunStream", content=envelope(body), headers={"content-type": "application/connect+json"}
        )
        web = await http.post(
            f"{RUNS}/RunStream", content=envelope(body), headers={"content-type": "application/grpc-web+json"}
        )
    (flags, end), *_ = envelopes(connect.content)
    assert connect.status_code == 200 and flags == 2
    assert json.loads(end)["error"]["code"] == "not_found"
    (flags, trailers), *_ = envelopes(web.content)
    assert flags == 0x80 and grpc_web_trailers(trailers)["grpc-status"] == "5"


@pytest.mark.parametrize("text", [False, True])
async def test_grpc_web_streams_a_run(web_gateway: GatewayProcess, text: bool) -> None:
    request = runs_pb2.CreateRunRequest(assistant_id="agent", stream_mode=[runs_pb2.STREAM_MODE_VALUES])
    request.input.struct_value.update({"topic": "rain"})
    payload = envelope(request.SerializeToString())
    content_type = "application/grpc-web-text" if text else "application/grpc-web+proto"
    async with httpx.AsyncClient(base_url=web_gateway.http_url) as http:
        reply = await http.post(
            f"{RUNS}/RunStream",
            content=base64.b64encode(payload) if text else payload,
            headers={"content-type": content_type, "x-grpc-web": "1"},
        )
    assert reply.status_code == 200 and reply.headers["content-type"] == content_type
    body = reply.content
    if text:
        # Each chunk is base64 of its own, padded: decoded 4 characters at a time, as a client does.
        body = b"".join(base64.b64decode(body[i : i + 4]) for i in range(0, len(body), 4))
    *messages, (flags, trailers) = envelopes(body)
    assert flags == 0x80 and grpc_web_trailers(trailers)["grpc-status"] == "0"
    events = [runs_pb2.RunEvent.FromString(data) for _, data in messages]
    assert [e.WhichOneof("event") for e in events] == ["metadata", "values", "values", "values", "end"]


async def test_the_deadline_ends_the_call(web_gateway: GatewayProcess) -> None:
    body = json.dumps(
        {"assistant_id": "slow", "input": {"n": 100, "delay": 0.05}, "stream_mode": ["STREAM_MODE_CUSTOM"]}
    )
    async with httpx.AsyncClient(base_url=web_gateway.http_url) as http:
        reply = await http.post(
            f"{RUNS}/RunStream",
            content=envelope(body.encode()),
            headers={"content-type": "application/connect+json", "connect-timeout-ms": "500"},
        )
    *events, (flags, end) = envelopes(reply.content)
    assert flags == 2 and json.loads(end)["error"]["code"] == "deadline_exceeded"
    assert 0 < len(events) < 100


@pytest.mark.parametrize(
    ("header", "value", "named"),
    [("connect-timeout-ms", b"\xb3", "connect-timeout-ms"), ("grpc-timeout", b"\xb3S", "grpc-timeout")],
)
async def test_a_timeout_of_a_digit_int_cannot_read_is_invalid_argument(
    web_gateway: GatewayProcess, header: str, value: bytes, named: str
) -> None:
    # Read as latin-1, 0xB3 is "³": a digit to str.isdigit(), and no number to int().
    content_type = "application/connect+json" if header.startswith("connect") else "application/grpc-web+json"
    body = json.dumps({"assistant_id": "agent", "input": {"topic": "x"}}).encode()
    async with httpx.AsyncClient(base_url=web_gateway.http_url) as http:
        reply = await http.post(
            f"{RUNS}/RunStream", content=envelope(body), headers={"content-type": content_type, header: value}
        )
    assert reply.status_code != 500
    if header.startswith("connect"):
        (flags, end) = envelopes(reply.content)[-1]
        assert flags == 2 and json.loads(end)["error"]["code"] == "invalid_argument"
        assert json.loads(end)["error"]["message"].startswith(named)
    else:
        status = reply.headers.get("grpc-status") or grpc_web_trailers(envelopes(reply.content)[-1][1])["grpc-status"]
        assert status == "3", reply.content[:300]


async def test_a_client_that_leaves_cancels_its_run(web_gateway: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=web_gateway.http_url) as http:
        thread = (await http.post("/threads", json={})).json()["thread_id"]
        body = {
            "assistant_id": "slow",
            "thread_id": thread,
            "input": {"n": 200, "delay": 0.05},
            "stream_mode": ["STREAM_MODE_CUSTOM"],
            "on_disconnect": "ON_DISCONNECT_CANCEL",
        }
        async with http.stream(
            "POST",
            f"{RUNS}/RunStream",
            content=envelope(json.dumps(body).encode()),
            headers={"content-type": "application/connect+json"},
        ) as reply:
            async for chunk in reply.aiter_bytes():
                if b"custom" in chunk:
                    break
        for _ in range(100):
            runs = (await http.get(f"/threads/{thread}/runs")).json()
            if runs and runs[0]["status"] not in ("pending", "running"):
                break
            await asyncio.sleep(0.1)
        assert runs[0]["status"] == "interrupted"


def test_with_an_api_key_the_web_calls_need_it(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path / "gateway.sqlite", extra_args=("--api-key", "s3cret")).start()
    try:
        with httpx.Client(base_url=proc.http_url) as http:
            refused = http.post(f"{ASSISTANTS}/SearchAssistants", json={})
            assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated"
            allowed = http.post(f"{ASSISTANTS}/SearchAssistants", json={}, headers={"x-api-key": "s3cret"})
            assert allowed.status_code == 200 and allowed.json()["assistants"]
            health = http.post("/grpc.health.v1.Health/Check", json={})
            assert health.status_code == 200 and health.json() == {"status": "SERVING"}
    finally:
        proc.kill()


async def test_cors_allows_the_protocol_headers(web_gateway: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=web_gateway.http_url) as http:
        preflight = await http.options(
            f"{RUNS}/RunStream",
            headers={
                "origin": "http://localhost:5173",
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type,connect-protocol-version,connect-timeout-ms,x-grpc-web",
            },
        )
        assert preflight.status_code == 200
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert "connect-protocol-version" in allowed and "x-grpc-web" in allowed
        reply = await http.post(
            f"{THREADS}/GetThread", json={"thread_id": str(uuid.uuid4())}, headers={"origin": "http://localhost:5173"}
        )
        exposed = reply.headers["access-control-expose-headers"].lower()
        assert "grpc-status" in exposed and "grpc-message" in exposed


async def test_web_calls_are_counted_as_grpc_calls(web_gateway: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=web_gateway.http_url) as http:
        await http.post(f"{THREADS}/GetThread", json={"thread_id": str(uuid.uuid4())})
        metrics = (await http.get("/metrics")).text
    assert any(
        "GetThread" in line and "NOT_FOUND" in line for line in metrics.splitlines() if not line.startswith("#")
    ), "no gRPC metric for the web call"


def test_plain_curl_streams_a_run_over_connect_and_grpc_web(web_gateway: GatewayProcess, tmp_path: Path) -> None:
    body = json.dumps(run_request(stream_mode=["STREAM_MODE_UPDATES"])).encode()
    (tmp_path / "request").write_bytes(envelope(body))
    for content_type in ("application/connect+json", "application/grpc-web+json"):
        out = subprocess.run(
            [
                "curl", "--http1.1", "-sS", "-N", "-X", "POST",
                "-H", f"content-type: {content_type}",
                "--data-binary", f"@{tmp_path / 'request'}",
                f"{web_gateway.http_url}{RUNS}/RunStream",
            ],
            capture_output=True,
            timeout=60,
            check=True,
        ).stdout  # fmt: skip
        *events, (flags, _) = envelopes(out)
        assert flags in (0x02, 0x80)
        updates = [json.loads(data)["updates"]["json"] for _, data in events if b'"updates"' in data]
        assert [json.loads(u) for u in updates] == [
            {"refine_topic": {"topic": "ice cream and cats"}},
            {"generate_joke": {"joke": "This is a joke about ice cream and cats"}},
        ]


async def test_a_connect_error_carries_the_error_info(web_gateway: GatewayProcess) -> None:
    missing = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=web_gateway.http_url) as http:
        gone = await http.post(f"{THREADS}/GetThread", json={"thread_id": missing})
    assert gone.status_code == 404
    details = {d["type"]: d["value"] for d in gone.json()["details"]}
    info = error_details_pb2.ErrorInfo.FromString(_unpadded_b64(details["google.rpc.ErrorInfo"]))
    assert (info.domain, info.reason) == ("langgraph.gateway", "THREAD_NOT_FOUND")
    assert dict(info.metadata) == {"thread_id": missing}
    resource = error_details_pb2.ResourceInfo.FromString(_unpadded_b64(details["google.rpc.ResourceInfo"]))
    assert (resource.resource_type, resource.resource_name) == ("thread", missing)


def _unpadded_b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))
