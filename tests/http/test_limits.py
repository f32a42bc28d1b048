"""Limits on what a request may ask, each with its own status and a message that names it: body
size (413), nesting depth (422), queued runs per thread (429), integers past what sqlite holds."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests._server import GatewayProcess
from tests.http._bridge import BridgeProcess

MAX_BODY = 4096


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    db = tmp_path_factory.mktemp("limited") / "gateway.sqlite"
    extra = ("--max-body-bytes", str(MAX_BODY), "--max-queued-runs", "2")
    proc = GatewayProcess(db, extra_args=extra).start()
    yield proc
    proc.kill()


@pytest.fixture(scope="module")
def bridge(limited: GatewayProcess) -> Iterator[BridgeProcess]:
    proc = BridgeProcess(limited.grpc_target).start()
    yield proc
    proc.kill()


@pytest.fixture
def http(limited: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=limited.http_url, timeout=30) as client:
        yield client


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth - 1):
        value = [value]
    return [value] if depth else value


def test_a_body_over_the_limit_is_413(http: httpx.Client) -> None:
    fits = {"metadata": {"pad": "x" * (MAX_BODY - 100)}}
    assert http.post("/threads/search", json=fits).status_code == 200
    too_large = {"metadata": {"pad": "x" * MAX_BODY}}
    response = http.post("/threads/search", json=too_large)
    assert response.status_code == 413
    assert response.json() == {"detail": f"Request body too large (limit: {MAX_BODY} bytes)"}

    def chunks() -> Iterator[bytes]:
        # No Content-Length: the server counts while it reads, and stops reading at the limit.
        yield b'{"metadata": {"pad": "'
        for _ in range(MAX_BODY // 1000 + 1):
            yield b"x" * 1000
        yield b'"}}'

    response = http.post("/threads", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and str(MAX_BODY) in response.json()["detail"]


@pytest.mark.parametrize("field", ["input", "config", "context", "command", "metadata"])
def test_a_field_nested_deeper_than_32_levels_is_422_naming_it(http: httpx.Client, field: str) -> None:
    thread_id = http.post("/threads", json={}).json()["thread_id"]
    body = {"assistant_id": "agent", field: {"deep": nested(32)}}
    response = http.post(f"/threads/{thread_id}/runs", json=body)
    assert response.status_code == 422
    assert response.json() == {
        "detail": f"{field} is nested more than 32 levels deep (at '{field}.deep.0.0.0.0.0.0.0')"
    }


def test_32_levels_are_accepted_and_come_back(http: httpx.Client) -> None:
    created = http.post("/threads", json={"metadata": {"deep": nested(31)}})
    assert created.status_code == 200 and created.json()["metadata"]["deep"] == nested(31)
    result = http.post("/runs/wait", json={"assistant_id": "agent", "input": {"topic": "x", "deep": nested(31)}})
    assert result.status_code == 200 and result.json()["topic"] == "x and cats"


def test_a_body_deeper_than_the_json_parser_takes_is_422(http: httpx.Client) -> None:
    response = http.post("/threads", content=b"[" * 2000 + b"]" * 2000)
    assert response.status_code == 422
    assert response.json() == {"detail": "the request body is nested more than 32 levels deep"}


def test_a_full_thread_queue_is_429_directly_and_through_the_bridge(http: httpx.Client, bridge: BridgeProcess) -> None:
    thread_id = http.post("/threads", json={}).json()["thread_id"]
    slow = {"assistant_id": "slow", "input": {"n": 100, "delay": 0.05}}
    run_ids = [http.post(f"/threads/{thread_id}/runs", json=slow).json()["run_id"] for _ in range(2)]
    try:
        response = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": "agent", "input": {"topic": "x"}})
        assert response.status_code == 429
        assert thread_id in response.json()["detail"] and "limit is 2" in response.json()["detail"]
        streamed = http.post(f"/threads/{thread_id}/runs/stream", json={"assistant_id": "agent", "input": {}})
        assert streamed.status_code == 429
        with httpx.Client(base_url=bridge.http_url, timeout=30) as remote:
            bridged = remote.post(f"/threads/{thread_id}/runs", json={"assistant_id": "agent", "input": {}})
            assert bridged.status_code == 429 and thread_id in bridged.json()["detail"]
    finally:
        for run_id in run_ids:
            http.post(f"/threads/{thread_id}/runs/{run_id}/cancel")


@pytest.mark.parametrize("query", ["limit=9223372036854775808", "offset=18446744073709551616", "limit=2147483648"])
def test_query_integers_past_the_limit_are_422(http: httpx.Client, query: str) -> None:
    thread_id = http.post("/threads", json={}).json()["thread_id"]
    for path in (f"/threads/{thread_id}/runs", f"/threads/{thread_id}/history"):
        response = http.get(f"{path}?{query}")
        if path.endswith("history") and query.startswith("offset"):
            assert response.status_code == 200  # history takes no offset
            continue
        assert response.status_code == 422
        assert response.json()["detail"] == f"{query.split('=')[0]} must be at most 2147483647"


SEARCHES = ["/assistants/search", "/threads/search", "/runs/crons/search", "/store/items/search", "/store/namespaces"]


@pytest.mark.parametrize("path", SEARCHES)
def test_a_body_offset_past_int32_is_422_on_the_gateway_and_through_the_bridge(
    http: httpx.Client, bridge: BridgeProcess, path: str
) -> None:
    """The bridge carries offsets to the core as int32: past that, both edges answer 422 with
    the field's name (the bridge used to fail with 500), and the largest one is served."""
    with httpx.Client(base_url=bridge.http_url, timeout=30) as remote:
        for client in (http, remote):
            refused = client.post(path, json={"offset": 2**31})
            assert refused.status_code == 422, refused.text
            assert refused.json()["detail"] == "offset must be an integer from 0 to 2147483647, not 2147483648"
            served = client.post(path, json={"offset": 2**31 - 1})
            assert served.status_code == 200, served.text
            assert served.json() == [] or served.json() == {"namespaces": []} or "items" in served.json()


@pytest.mark.parametrize("path", ["/assistants/search", "/threads/search", "/threads/count"])
def test_a_filter_nested_past_what_protobuf_carries_is_422_through_the_bridge(bridge: BridgeProcess, path: str) -> None:
    # A Struct in a gRPC request carries far fewer levels than JSON: building the request used to
    # fail in the bridge with a 500 (found by the fuzz test). The HTTP edge refuses it first.
    with httpx.Client(base_url=bridge.http_url, timeout=30) as remote:
        refused = remote.post(path, json={"metadata": {"deep": nested(40)}})
        assert refused.status_code == 422, refused.text
        assert "nested more than 32 levels deep" in refused.json()["detail"]
        assert "(at 'metadata.deep.0.0.0.0.0.0.0')" in refused.json()["detail"]
        assert remote.post(path, json={"metadata": {"deep": nested(20)}}).status_code == 200
