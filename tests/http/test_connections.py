"""What the HTTP server takes from a connection before any route runs, tried with raw sockets
against a real gateway (and the bridge): a request head over --http-max-header-kb is refused
with 431, and a connection that does not send its head within --http-header-timeout is closed,
whether it says nothing or trickles a byte at a time. Neither needs credentials to happen, so
neither may cost the server more than the limit, and the server keeps serving."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests._server import GatewayProcess
from tests.http._bridge import BridgeProcess

HEADER_KB = 16
LIMITS = ("--http-max-header-kb", str(HEADER_KB), "--http-header-timeout", "1")
# A failure bound only: a connection still open after this is one the server did not close.
PATIENCE = 30.0


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    db = tmp_path_factory.mktemp("connections") / "gateway.sqlite"
    proc = GatewayProcess(db, extra_args=(*LIMITS, "--api-key", "k3y")).start()
    yield proc
    proc.kill()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
    return sock


def read_to_close(sock: socket.socket) -> bytes:
    """All the server sends before it closes the connection (a reset counts as a close)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def still_serving(gateway: GatewayProcess) -> None:
    assert httpx.get(f"{gateway.http_url}/ok", timeout=30).json() == {"ok": True}


def test_a_head_over_the_limit_is_431_and_the_server_keeps_serving(gateway: GatewayProcess) -> None:
    with connect(gateway.http_port) as sock:
        # Unfinished, and without a key: the refusal comes before any route, auth included.
        sock.sendall(b"GET /threads HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 * HEADER_KB * 1024))
        answer = read_to_close(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    assert f"limit: {HEADER_KB * 1024} bytes".encode() in answer
    still_serving(gateway)
    # A head under the limit is served as usual.
    under = {"x-api-key": "k3y", "x-pad": "a" * (HEADER_KB * 1024 // 2)}
    assert httpx.post(f"{gateway.http_url}/threads/search", json={}, headers=under, timeout=30).status_code == 200


def test_an_endless_header_is_cut_off(gateway: GatewayProcess) -> None:
    sent, cap = 0, 256 * 1024 * 1024
    with connect(gateway.http_port) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        try:
            while sent < cap:
                sock.sendall(b"a" * 65536)
                sent += 65536
        except OSError:
            pass
        else:
            pytest.fail(f"the server read {cap} bytes of one header without closing the connection")
    still_serving(gateway)


def test_a_silent_connection_is_closed(gateway: GatewayProcess) -> None:
    with connect(gateway.http_port) as sock:
        assert read_to_close(sock) == b""
    still_serving(gateway)


def test_a_request_trickled_a_byte_at_a_time_is_closed(gateway: GatewayProcess) -> None:
    with connect(gateway.http_port) as sock:
        # A first request answered, then the next one's head a byte at a time: the wait
        # between requests is uvicorn's keep-alive timeout, the head after its first byte ours.
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b'{"ok":true}'):
            chunk = sock.recv(65536)
            assert chunk, first
            first += chunk
        assert first.startswith(b"HTTP/1.1 200 "), first
        head = b"GET /ok HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 10_000
        deadline = time.monotonic() + PATIENCE
        try:
            for byte in head:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
                if time.monotonic() > deadline:
                    break
        except OSError:
            pass
        answer = read_to_close(sock)
    # Closed, with a 408 unless the close reset the connection before it was read.
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer
    assert time.monotonic() <= deadline, "the server never closed the trickling connection"
    still_serving(gateway)


def test_a_request_that_outlasts_the_header_timeout_is_not_cut(gateway: GatewayProcess) -> None:
    body = {"assistant_id": "slow", "input": {"n": 6, "delay": 0.5}}
    with httpx.Client(base_url=gateway.http_url, headers={"x-api-key": "k3y"}, timeout=60) as http:
        answer = http.post("/runs/wait", json=body)
    assert answer.status_code == 200 and answer.json()["ticks"] == 6


def test_the_bridge_closes_a_silent_connection(gateway: GatewayProcess) -> None:
    bridge = BridgeProcess(gateway.grpc_target, api_key="k3y", extra_args=LIMITS).start()
    try:
        with connect(bridge.http_port) as sock:
            assert read_to_close(sock) == b""
        with connect(bridge.http_port) as sock:
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 * HEADER_KB * 1024))
            assert read_to_close(sock).startswith(b"HTTP/1.1 431 ")
        assert httpx.get(f"{bridge.http_url}/ok", timeout=30).status_code == 200
    finally:
        bridge.kill()
