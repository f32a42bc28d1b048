"""The store through the official Python SDK (sync and async) and plain HTTP, on both backends,
served by the gateway and by the bridge process (which calls the gateway's StoreService), and
as graphs use it: across runs and threads."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client, get_sync_client

from tests._server import GatewayProcess
from tests._store import indexed, namespace, store_backend, store_bridge, store_gateway, store_url, write_config

__all__ = ["store_backend", "store_bridge", "store_gateway", "store_url"]


def _keys(items: list[dict[str, Any]]) -> list[str]:
    return sorted(item["key"] for item in items)


def _aware(timestamp: str) -> bool:
    return datetime.fromisoformat(timestamp).tzinfo is not None


def test_put_get_search_list_delete_with_the_sync_sdk(store_url: str) -> None:
    client = get_sync_client(url=store_url)
    root = namespace()
    client.store.put_item([*root, "docs"], "a", {"text": "first", "n": 1, "tag": "x"})
    client.store.put_item([*root, "docs"], "b", {"text": "second", "n": 2, "tag": "x"})
    client.store.put_item([*root, "notes", "deep"], "c", {"text": "third", "n": 3, "tag": "y"})

    item = client.store.get_item([*root, "docs"], "a")
    assert {k: item[k] for k in ("namespace", "key", "value")} == {
        "namespace": [*root, "docs"],
        "key": "a",
        "value": {"text": "first", "n": 1, "tag": "x"},
    }
    assert _aware(item["created_at"]) and _aware(item["updated_at"])
    assert client.store.get_item([*root, "docs"], "missing") is None

    found = client.store.search_items(root)["items"]
    assert _keys(found) == ["a", "b", "c"]
    assert all(item["score"] is None for item in found)
    assert _keys(client.store.search_items(root, filter={"tag": "x"})["items"]) == ["a", "b"]
    assert _keys(client.store.search_items(root, filter={"n": {"$gte": 2}})["items"]) == ["b", "c"]
    assert _keys(client.store.search_items([*root, "notes"])["items"]) == ["c"]
    pages = [client.store.search_items(root, limit=2, offset=offset)["items"] for offset in (0, 2)]
    assert [len(page) for page in pages] == [2, 1] and _keys(pages[0] + pages[1]) == ["a", "b", "c"]

    listed = client.store.list_namespaces(prefix=root)["namespaces"]
    assert listed == [[*root, "docs"], [*root, "notes", "deep"]]
    assert client.store.list_namespaces(prefix=root, max_depth=2)["namespaces"] == [[*root, "docs"], [*root, "notes"]]
    assert client.store.list_namespaces(prefix=root, suffix=["deep"])["namespaces"] == [[*root, "notes", "deep"]]
    assert client.store.list_namespaces(prefix=root, limit=1, offset=1)["namespaces"] == [[*root, "notes", "deep"]]

    client.store.put_item([*root, "docs"], "a", {"text": "replaced"})
    assert client.store.get_item([*root, "docs"], "a")["value"] == {"text": "replaced"}
    client.store.delete_item([*root, "docs"], "a")
    assert client.store.get_item([*root, "docs"], "a") is None
    client.store.delete_item([*root, "docs"], "a")  # deleting what is gone is no error


async def test_the_async_sdk(store_url: str) -> None:
    client = get_client(url=store_url)
    root = namespace()
    # Postgres gives 1e300 back as a 301-digit integer, which goes out as the number it was.
    value = {"text": "hello", "nested": {"list": [1, 2.5, None, True]}, "big": 1e300}
    await client.store.put_item(root, "k", value, ttl=60)
    item = await client.store.get_item(root, "k", refresh_ttl=True)
    assert item["value"] == value
    found = await client.store.search_items(root, filter={"text": "hello"}, refresh_ttl=False)
    assert [i["key"] for i in found["items"]] == ["k"]
    assert (await client.store.list_namespaces(prefix=root))["namespaces"] == [root]
    await client.store.delete_item(root, "k")
    assert await client.store.get_item(root, "k") is None


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "status"),
    [
        ("PUT", "/store/items", {"namespace": ["a"], "value": {}}, None, 422),  # no key
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k"}, None, 422),  # no value
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": [1]}, None, 422),
        ("PUT", "/store/items", {"namespace": "a", "key": "k", "value": {}}, None, 422),
        ("PUT", "/store/items", {"namespace": ["a.b"], "key": "k", "value": {}}, None, 422),
        ("PUT", "/store/items", {"namespace": ["a", ""], "key": "k", "value": {}}, None, 422),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "index": True}, None, 422),
        ("PUT", "/store/items", {"namespace": [], "key": "k", "value": {}}, None, 400),
        ("PUT", "/store/items", {"namespace": ["langgraph"], "key": "k", "value": {}}, None, 400),
        ("GET", "/store/items", None, {"namespace": "a"}, 400),  # no key
        ("GET", "/store/items", None, {"key": "k"}, 422),  # no namespace: one empty label
        ("DELETE", "/store/items", {"namespace": ["a"]}, None, 422),
        ("POST", "/store/items/search", {"namespace_prefix": ["a"], "limit": "1"}, None, 422),
        ("POST", "/store/items/search", {"namespace_prefix": ["a"], "filter": {"n": {"$foo": 1}}}, None, 400),
        ("POST", "/store/namespaces", {"prefix": ["a.b"]}, None, 422),
    ],
)
def test_malformed_requests_get_the_reference_statuses(
    store_url: str, method: str, path: str, body: Any, params: Any, status: int
) -> None:
    response = httpx.request(method, store_url + path, json=body, params=params, timeout=30)
    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail"], str)


def test_semantic_search(store_url: str, store_backend: str) -> None:
    client = get_sync_client(url=store_url)
    root = namespace()
    client.store.put_item(root, "cats", {"text": "cats chase mice", "kind": "animal"})
    client.store.put_item(root, "dogs", {"text": "dogs chase cats", "kind": "animal"})
    client.store.put_item(root, "cars", {"text": "fast red cars", "kind": "thing"})
    client.store.put_item(root, "quiet", {"text": "cats cats cats"}, index=False)
    client.store.put_item(root, "other", {"text": "nothing", "title": "mice"}, index=["title"])

    found = client.store.search_items(root, query="cats chase mice")["items"]
    if not indexed(store_backend):
        # A Postgres without pgvector: the gateway serves the store without the index, and a
        # query neither ranks nor drops items.
        assert sorted(item["key"] for item in found) == ["cars", "cats", "dogs", "other", "quiet"], found
        assert all(item.get("score") is None for item in found)
        return
    assert [item["key"] for item in found][:2] == ["cats", "dogs"]
    assert found[0]["score"] == pytest.approx(1.0, abs=1e-6)
    assert found[0]["score"] > found[1]["score"] > 0
    assert "quiet" not in [item["key"] for item in found]  # put with index=False
    # An item indexed on another field matches by that field.
    assert client.store.search_items(root, query="mice", limit=1)["items"][0]["key"] == "other"
    # A filter narrows the semantic search.
    assert [i["key"] for i in client.store.search_items(root, query="cats", filter={"kind": "thing"})["items"]] == [
        "cars"
    ]


def test_items_expire_after_their_ttl(store_gateway: GatewayProcess) -> None:
    client = get_sync_client(url=store_gateway.http_url)
    root = namespace()
    client.store.put_item(root, "short", {"v": 1}, ttl=0.02)  # 1.2 s
    client.store.put_item(root, "long", {"v": 2}, ttl=60)
    assert client.store.get_item(root, "short", refresh_ttl=False) is not None
    deadline = time.monotonic() + 30
    while client.store.get_item(root, "short", refresh_ttl=False) is not None:
        assert time.monotonic() < deadline, "the item did not expire"
        time.sleep(0.2)
    # Expired items are not read, by a get or by a search, swept or not.
    assert _keys(client.store.search_items(root)["items"]) == ["long"]
    assert client.store.get_item(root, "long")["value"] == {"v": 2}


def test_reading_restarts_the_ttl(store_gateway: GatewayProcess, store_backend: str) -> None:
    client = get_sync_client(url=store_gateway.http_url)
    if store_backend == "postgres":
        # LangGraph's Postgres store keeps ttl_minutes as an integer, so an item that lives for
        # seconds cannot be kept alive by reads: the refresh is seen in its expiry instead.
        _reading_moves_the_expiry(client, store_gateway)
        return
    root = namespace()
    client.store.put_item(root, "kept", {"v": 1}, ttl=0.05)  # 3 s
    client.store.put_item(root, "left", {"v": 2}, ttl=0.05)
    started = time.monotonic()
    # Read every fifth of a second (refresh_on_read is on), for half as long again as the ttl:
    # each read gives it 3 s more.
    while time.monotonic() - started < 4.5:
        assert client.store.get_item(root, "kept") is not None
        time.sleep(0.2)
    assert client.store.get_item(root, "left", refresh_ttl=False) is None
    assert client.store.get_item(root, "kept", refresh_ttl=False) is not None


def _reading_moves_the_expiry(client: Any, gateway: GatewayProcess) -> None:
    url = gateway.extra_args[gateway.extra_args.index("--database-url") + 1]
    root = namespace()
    client.store.put_item(root, "kept", {"v": 1}, ttl=1)

    def expires_at() -> datetime:
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT expires_at FROM store WHERE prefix = %s AND key = 'kept'", (".".join(root),)
            ).fetchone()
        assert row is not None and row[0] is not None
        return row[0]

    first = expires_at()
    # The refresh is the read's time plus the ttl: later by at least the time between.
    time.sleep(0.3)
    assert client.store.get_item(root, "kept", refresh_ttl=False) is not None
    assert expires_at() == first
    assert client.store.get_item(root, "kept") is not None
    assert (expires_at() - first).total_seconds() >= 0.3


def test_a_graph_keeps_memories_across_runs_and_threads(store_gateway: GatewayProcess) -> None:
    client = get_sync_client(url=store_gateway.http_url)
    user = namespace()[0]
    first, second = client.threads.create(), client.threads.create()
    out = client.runs.wait(first["thread_id"], "memory", input={"user": user, "remember": "likes tea"})
    assert out["memories"] == out["recalled"] == ["likes tea"]
    out = client.runs.wait(second["thread_id"], "memory", input={"user": user, "remember": "lives in Paris"})
    assert out["memories"] == out["recalled"] == ["likes tea", "lives in Paris"]
    # A stateless run, and another run on the first thread, see the same store.
    assert client.runs.wait(None, "memory", input={"user": user})["recalled"] == ["likes tea", "lives in Paris"]
    out = client.runs.wait(first["thread_id"], "memory", input={"user": user, "remember": "has a cat"})
    assert out["memories"] == ["has a cat", "likes tea", "lives in Paris"]
    # What the graph stored is the API's store too.
    items = client.store.search_items(["memories", user])["items"]
    assert sorted(item["value"]["text"] for item in items) == ["has a cat", "likes tea", "lives in Paris"]
    # Another user's memories are apart.
    assert client.runs.wait(None, "memory", input={"user": f"{user}-2"})["recalled"] == []


def test_disable_store_turns_the_routes_off(tmp_path: Path) -> None:
    config = write_config(tmp_path, index=False)
    raw = json.loads(config.read_text())
    raw["http"] = {"disable_store": True}
    config.write_text(json.dumps(raw))
    proc = GatewayProcess(tmp_path / "gateway.sqlite", config=config).start()
    try:
        response = httpx.post(f"{proc.http_url}/store/items/search", json={"namespace_prefix": []})
        assert response.status_code == 404
        # Runs keep their store.
        out = httpx.post(f"{proc.http_url}/runs/wait", json={"assistant_id": "memory", "input": {"user": "u"}})
        assert out.json()["recalled"] == []
    finally:
        proc.kill()


def test_a_ttl_past_the_calendar_is_refused_naming_it(store_url: str) -> None:
    item = {"namespace": ["ttl", "far"], "key": "k", "value": {"v": 1}}
    with httpx.Client(base_url=store_url) as http:
        answer = http.put("/store/items", json={**item, "ttl": 3.67e16})
        assert answer.status_code == 422 and "ttl" in answer.json()["detail"]
        assert http.put("/store/items", json={**item, "ttl": 60 * 24 * 365}).status_code == 204
