"""The limits on what a search may ask and what a record may hold (gateway.shared.limits), on sqlite and
on Postgres, through every edge: a filter of more keys than allowed and metadata over its size
are refused with 422 (gRPC INVALID_ARGUMENT) naming the field and the limit, on every route that
takes them; a filter of as many keys as allowed still finds what it should."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import struct_pb2
from langgraph.gateway.v1 import (
    assistants_pb2,
    assistants_pb2_grpc,
    crons_pb2,
    crons_pb2_grpc,
    runs_pb2,
    runs_pb2_grpc,
    store_pb2,
    store_pb2_grpc,
    threads_pb2,
    threads_pb2_grpc,
)

from gateway.shared.limits import MAX_FILTER_KEYS, MAX_METADATA_BYTES
from gateway.shared.serde import json_text
from tests._backends import postgres_database
from tests._server import GatewayProcess

TOO_MANY = {f"k{i}": i for i in range(995)}
FILTER_REFUSED = f"has 995 keys: a filter may have at most {MAX_FILTER_KEYS}"
BIG = {"pad": "x" * MAX_METADATA_BYTES}
METADATA_REFUSED = f"metadata is {len(json_text(BIG))} bytes of JSON: metadata may be at most {MAX_METADATA_BYTES}"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    db = tmp_path_factory.mktemp("limits") / "gateway.sqlite"
    if request.param == "sqlite":
        proc = GatewayProcess(db).start()
        yield proc
        proc.kill()
        return
    with postgres_database() as url:
        proc = GatewayProcess(db, extra_args=("--database-url", url)).start()
        yield proc
        proc.kill()


@pytest.fixture(params=["gateway", "bridge"])
def http(request: pytest.FixtureRequest, gateway: GatewayProcess) -> Iterator[httpx.Client]:
    """The gateway's HTTP edge, and the bridge's (HTTP forwarded to the gateway's gRPC edge)."""
    url = gateway.http_url if request.param == "gateway" else request.getfixturevalue("bridge").http_url
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client


class Ids:
    """A thread, an assistant and a cron to aim the routes at."""

    def __init__(self, http: httpx.Client) -> None:
        self.thread = http.post("/threads", json={}).raise_for_status().json()["thread_id"]
        self.assistant = http.post("/assistants", json={"graph_id": "agent"}).raise_for_status().json()["assistant_id"]
        cron = {"assistant_id": "agent", "schedule": "0 0 1 1 *", "input": {"topic": "x"}}
        self.cron = http.post("/runs/crons", json=cron).raise_for_status().json()["cron_id"]


FILTER_ROUTES = [
    ("/threads/search", "metadata"),
    ("/threads/search", "values"),
    ("/threads/count", "metadata"),
    ("/threads/count", "values"),
    ("/threads/{thread}/history", "metadata"),
    ("/assistants/search", "metadata"),
    ("/assistants/count", "metadata"),
    ("/assistants/{assistant}/versions", "metadata"),
    ("/runs/crons/search", "metadata"),
    ("/runs/crons/count", "metadata"),
    ("/store/items/search", "filter"),
]


def test_a_filter_of_too_many_keys_is_422_on_every_route(http: httpx.Client) -> None:
    ids = Ids(http)
    for path, field in FILTER_ROUTES:
        body: dict[str, Any] = {field: TOO_MANY}
        if path.startswith("/store"):
            body["namespace_prefix"] = ["limits"]
        response = http.post(path.format(**vars(ids)), json=body)
        assert response.status_code == 422, (path, field, response.text)
        assert response.json() == {"detail": f"{field} {FILTER_REFUSED}"}, (path, field)


METADATA_ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/threads", {}),
    ("PATCH", "/threads/{thread}", {}),
    ("POST", "/assistants", {"graph_id": "agent"}),
    ("PATCH", "/assistants/{assistant}", {}),
    ("POST", "/runs/crons", {"assistant_id": "agent", "schedule": "0 0 1 1 *"}),
    ("PATCH", "/runs/crons/{cron}", {}),
    ("POST", "/threads/{thread}/runs", {"assistant_id": "agent", "input": {"topic": "x"}}),
    ("POST", "/runs", {"assistant_id": "agent", "input": {"topic": "x"}}),
]


def test_metadata_over_its_size_is_422_on_every_route(http: httpx.Client) -> None:
    ids = Ids(http)
    counts = ("/threads/count", "/assistants/count", "/runs/crons/count")
    before = [http.post(path, json={}).json() for path in counts]
    for method, path, body in METADATA_ROUTES:
        response = http.request(method, path.format(**vars(ids)), json={**body, "metadata": BIG})
        assert response.status_code == 422, (method, path, response.text)
        assert response.json() == {"detail": METADATA_REFUSED}, (method, path)
    # Nothing was made or changed.
    assert [http.post(path, json={}).json() for path in counts] == before
    assert http.get(f"/threads/{ids.thread}").json()["metadata"] == {}
    assert http.get(f"/threads/{ids.thread}/runs").json() == []


def test_metadata_that_a_patch_would_grow_past_its_size_is_422(http: httpx.Client) -> None:
    half = {"a": "x" * (MAX_METADATA_BYTES // 2)}
    ids = Ids(http)
    for path in ("/threads/{thread}", "/assistants/{assistant}", "/runs/crons/{cron}"):
        url = path.format(**vars(ids))
        assert http.patch(url, json={"metadata": half}).status_code == 200, url
        response = http.patch(url, json={"metadata": {"b": half["a"]}})
        assert response.status_code == 422, (url, response.text)
        assert response.json()["detail"].startswith("metadata is "), url
        assert response.json()["detail"].endswith(f"metadata may be at most {MAX_METADATA_BYTES}"), url
        assert "b" not in http.get(url).json()["metadata"], url


def test_a_filter_of_as_many_keys_as_allowed_finds_what_it_should(http: httpx.Client) -> None:
    tag = uuid.uuid4().hex
    keys = {f"k{i}": i for i in range(MAX_FILTER_KEYS - 1)}
    wanted = {**keys, "tag": tag}
    assert len(wanted) == MAX_FILTER_KEYS
    match = http.post("/threads", json={"metadata": {**wanted, "extra": True}}).json()["thread_id"]
    # Differs in one key of the filter's hundred, or lacks one.
    http.post("/threads", json={"metadata": {**wanted, "k50": -1}}).raise_for_status()
    http.post("/threads", json={"metadata": {k: v for k, v in wanted.items() if k != "k98"}}).raise_for_status()
    found = http.post("/threads/search", json={"metadata": wanted, "limit": 10}).json()
    assert [t["thread_id"] for t in found] == [match]
    assert http.post("/threads/count", json={"metadata": wanted}).json() == 1
    assistant = http.post("/assistants", json={"graph_id": "agent", "metadata": wanted}).json()["assistant_id"]
    http.post("/assistants", json={"graph_id": "agent", "metadata": {**wanted, "k0": "other"}}).raise_for_status()
    found = http.post("/assistants/search", json={"metadata": wanted, "limit": 10}).json()
    assert [a["assistant_id"] for a in found] == [assistant]
    assert http.post("/assistants/count", json={"metadata": wanted}).json() == 1


# The gRPC edge: the same limits, the same messages.


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(value)
    return out


@pytest.fixture
async def channel(gateway: GatewayProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(gateway.grpc_target) as opened:
        yield opened


async def test_the_grpc_edge_refuses_the_same_with_invalid_argument(
    channel: grpc.aio.Channel, gateway: GatewayProcess
) -> None:
    with httpx.Client(base_url=gateway.http_url, timeout=60) as http:
        ids = Ids(http)
    threads = threads_pb2_grpc.ThreadsServiceStub(channel)
    assistants = assistants_pb2_grpc.AssistantsServiceStub(channel)
    crons = crons_pb2_grpc.CronsServiceStub(channel)
    store = store_pb2_grpc.StoreServiceStub(channel)
    runs = runs_pb2_grpc.RunsServiceStub(channel)
    many, big = _struct(TOO_MANY), _struct(BIG)
    filters: list[tuple[str, Callable[[], Any]]] = [
        ("metadata", lambda: threads.SearchThreads(threads_pb2.SearchThreadsRequest(metadata=many))),
        ("values", lambda: threads.SearchThreads(threads_pb2.SearchThreadsRequest(values=many))),
        ("metadata", lambda: threads.CountThreads(threads_pb2.CountThreadsRequest(metadata=many))),
        ("values", lambda: threads.CountThreads(threads_pb2.CountThreadsRequest(values=many))),
        (
            "metadata",
            lambda: threads.GetThreadHistory(threads_pb2.GetThreadHistoryRequest(thread_id=ids.thread, metadata=many)),
        ),
        ("metadata", lambda: assistants.SearchAssistants(assistants_pb2.SearchAssistantsRequest(metadata=many))),
        ("metadata", lambda: assistants.CountAssistants(assistants_pb2.CountAssistantsRequest(metadata=many))),
        (
            "metadata",
            lambda: assistants.ListAssistantVersions(
                assistants_pb2.ListAssistantVersionsRequest(assistant_id=ids.assistant, metadata=many)
            ),
        ),
        ("metadata", lambda: crons.SearchCrons(crons_pb2.SearchCronsRequest(metadata=many))),
        ("metadata", lambda: crons.CountCrons(crons_pb2.CountCronsRequest(metadata=many))),
        (
            "filter",
            lambda: store.SearchItems(store_pb2.SearchItemsRequest(namespace_prefix=["limits"], filter=many)),
        ),
    ]
    for field, call in filters:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert err.value.details() == f"{field} {FILTER_REFUSED}"
    writes: list[Callable[[], Any]] = [
        lambda: threads.CreateThread(threads_pb2.CreateThreadRequest(metadata=big)),
        lambda: threads.UpdateThread(threads_pb2.UpdateThreadRequest(thread_id=ids.thread, metadata=big)),
        lambda: assistants.CreateAssistant(assistants_pb2.CreateAssistantRequest(graph_id="agent", metadata=big)),
        lambda: assistants.UpdateAssistant(
            assistants_pb2.UpdateAssistantRequest(assistant_id=ids.assistant, metadata=big)
        ),
        lambda: crons.CreateCron(
            crons_pb2.CreateCronRequest(schedule="0 0 1 1 *", payload=_struct({"assistant_id": "agent"}), metadata=big)
        ),
        lambda: crons.UpdateCron(crons_pb2.UpdateCronRequest(cron_id=ids.cron, metadata=big)),
        lambda: runs.CreateRun(runs_pb2.CreateRunRequest(thread_id=ids.thread, assistant_id="agent", metadata=big)),
    ]
    for call in writes:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details() == METADATA_REFUSED
    # As many keys as allowed: answered.
    allowed = _struct({f"k{i}": i for i in range(MAX_FILTER_KEYS)})
    found = await threads.SearchThreads(threads_pb2.SearchThreadsRequest(metadata=allowed))
    assert list(found.threads) == []
