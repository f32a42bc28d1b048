"""Connect and gRPC-Web on the HTTP port over HTTP/2 in cleartext with prior knowledge (h2c),
as Connect and gRPC clients speak it without TLS, from httpx and curl, against a real gateway;
HTTP/1.1 on the same port as before. (h2 negotiated by ALPN under TLS: tests/test_tls.py.)"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
from langgraph.gateway.v1 import runs_pb2

from tests._server import GatewayProcess
from tests.rpc.test_web import ASSISTANTS, RUNS, envelope, envelopes, grpc_web_trailers, run_request


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(tmp_path_factory.mktemp("h2") / "gateway.sqlite").start()
    yield proc
    proc.kill()


@pytest.fixture
async def h2c(gateway: GatewayProcess) -> AsyncIterator[httpx.AsyncClient]:
    # HTTP/2 only, over one connection: without TLS, httpx then speaks h2c with prior knowledge.
    async with httpx.AsyncClient(
        base_url=gateway.http_url, http1=False, http2=True, limits=httpx.Limits(max_connections=1), timeout=30
    ) as http:
        yield http


async def test_connect_unary_and_stream_over_h2c(h2c: httpx.AsyncClient) -> None:
    found = await h2c.post(f"{ASSISTANTS}/SearchAssistants", json={"graph_id": "agent"})
    assert found.http_version == "HTTP/2" and found.status_code == 200
    assert [a["graphId"] for a in found.json()["assistants"]] == ["agent"]
    body = json.dumps(run_request(stream_mode=["STREAM_MODE_VALUES", "STREAM_MODE_UPDATES"])).encode()
    async with h2c.stream(
        "POST", f"{RUNS}/RunStream", content=envelope(body), headers={"content-type": "application/connect+json"}
    ) as reply:
        assert reply.http_version == "HTTP/2" and reply.headers["content-type"] == "application/connect+json"
        *events, (end_flags, end) = envelopes(await reply.aread())
    assert end_flags == 2 and json.loads(end) == {}
    kinds = [next(k for k in json.loads(data) if k != "eventId") for _, data in events]
    assert kinds[0] == "metadata" and kinds[-1] == "end" and "values" in kinds and "updates" in kinds


async def test_grpc_web_stream_over_h2c(h2c: httpx.AsyncClient) -> None:
    request = runs_pb2.CreateRunRequest(assistant_id="agent", stream_mode=[runs_pb2.STREAM_MODE_VALUES])
    request.input.struct_value.update({"topic": "rain"})
    reply = await h2c.post(
        f"{RUNS}/RunStream",
        content=envelope(request.SerializeToString()),
        headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
    )
    assert reply.http_version == "HTTP/2" and reply.status_code == 200
    *messages, (flags, trailers) = envelopes(reply.content)
    assert flags == 0x80 and grpc_web_trailers(trailers)["grpc-status"] == "0"
    events = [runs_pb2.RunEvent.FromString(data) for _, data in messages]
    assert [e.WhichOneof("event") for e in events] == ["metadata", "values", "values", "values", "end"]


async def test_streams_share_one_connection(h2c: httpx.AsyncClient) -> None:
    """HTTP/2's point for streaming clients: many calls at once on one connection."""
    body = json.dumps(
        {"assistant_id": "slow", "input": {"n": 5, "delay": 0.05}, "stream_mode": ["STREAM_MODE_CUSTOM"]}
    ).encode()

    async def call() -> int:
        reply = await h2c.post(
            f"{RUNS}/RunStream", content=envelope(body), headers={"content-type": "application/connect+json"}
        )
        assert reply.http_version == "HTTP/2"
        *events, (flags, end) = envelopes(reply.content)
        assert flags == 2 and json.loads(end) == {}
        return sum(b'"custom"' in data for _, data in events)

    assert await asyncio.gather(*(call() for _ in range(8))) == [5] * 8


def test_curl_with_prior_knowledge(gateway: GatewayProcess, tmp_path: Path) -> None:
    (tmp_path / "request").write_bytes(envelope(json.dumps(run_request(stream_mode=["STREAM_MODE_UPDATES"])).encode()))
    for content_type in ("application/connect+json", "application/grpc-web+json"):
        done = subprocess.run(
            [
                "curl", "--http2-prior-knowledge", "-sS", "-N", "-X", "POST", "-w", "%{http_version}",
                "-H", f"content-type: {content_type}", "--data-binary", f"@{tmp_path / 'request'}",
                "-o", str(tmp_path / "out"), f"{gateway.http_url}{RUNS}/RunStream",
            ],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert done.stdout == "2"
        *events, (flags, _) = envelopes((tmp_path / "out").read_bytes())
        assert flags in (0x02, 0x80) and sum(b'"updates"' in data for _, data in events) == 2


async def test_http1_on_the_same_port(gateway: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=gateway.http_url) as http:
        found = await http.post(f"{ASSISTANTS}/SearchAssistants", json={"graph_id": "agent"})
        assert found.http_version == "HTTP/1.1" and found.status_code == 200
        # A request line that starts as the preface does, but is none: an HTTP/1.1 error, not HTTP/2.
        with socket.create_connection(("127.0.0.1", gateway.http_port), timeout=10) as raw:
            raw.sendall(b"PRI /ok HTTP/1.1\r\nhost: x\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 ")


async def test_a_stop_with_open_http2_connections(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path / "gateway.sqlite").start()
    try:
        body = json.dumps(
            {"assistant_id": "slow", "input": {"n": 1000, "delay": 0.05}, "stream_mode": ["STREAM_MODE_CUSTOM"]}
        ).encode()
        async with httpx.AsyncClient(base_url=proc.http_url, http1=False, http2=True, timeout=30) as http:
            assert (await http.get("/ok")).http_version == "HTTP/2"  # and this connection stays open, idle
            async with http.stream(
                "POST",
                f"{RUNS}/RunStream",
                content=envelope(body),
                headers={"content-type": "application/connect+json"},
            ) as reply:
                read, chunks = b"", reply.aiter_bytes()
                async for chunk in chunks:
                    read += chunk
                    if b"custom" in read:
                        break
                code = await asyncio.to_thread(proc.terminate)
                read += b"".join([chunk async for chunk in chunks])
        assert code == 0
        # The stream ended with its end message, not a reset connection.
        *events, (flags, end) = envelopes(read)
        assert flags == 2 and events, end
        assert not any("Traceback" in line for line in proc.stderr_lines), proc.stderr_lines
    finally:
        proc.kill()


def test_the_thread_sockets_websocket_over_http2(gateway: GatewayProcess) -> None:
    """A browser that speaks HTTP/2 to the port (under TLS, by ALPN) opens WebSockets on it with
    an extended CONNECT (RFC 8441), which the server's settings allow: the thread protocol's
    socket is accepted that way too, and a bad thread id is denied with its HTTP status."""
    thread_id = httpx.post(f"{gateway.http_url}/threads", json={}).json()["thread_id"]
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    statuses: dict[str, bytes] = {}
    with socket.create_connection(("127.0.0.1", gateway.http_port), timeout=30) as raw:
        raw.sendall(conn.data_to_send())
        for thread in (thread_id, "not-a-uuid"):
            stream = conn.get_next_available_stream_id()
            conn.send_headers(
                stream,
                [
                    (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                    (":path", f"/threads/{thread}/stream/events"), (":authority", "127.0.0.1"),
                    ("sec-websocket-version", "13"),
                ],
            )  # fmt: skip
            raw.sendall(conn.data_to_send())
            while thread not in statuses:
                data = raw.recv(65536)
                assert data, "the server closed the connection"
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                        statuses[thread] = dict(event.headers)[b":status"]
                raw.sendall(conn.data_to_send())
    assert statuses == {thread_id: b"200", "not-a-uuid": b"422"}
