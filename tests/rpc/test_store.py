"""StoreService over a real channel, on both backends: the store's five operations, item values
as JSON text, and errors as status codes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from google.protobuf import struct_pb2
from langgraph.gateway.v1 import store_pb2, store_pb2_grpc

from tests._server import GatewayProcess
from tests._store import indexed, namespace, store_backend, store_gateway, write_config
from tests.rpc.test_grpcurl import grpcurl

__all__ = ["store_backend", "store_gateway"]


@pytest_asyncio.fixture
async def store(store_gateway: GatewayProcess) -> AsyncIterator[store_pb2_grpc.StoreServiceStub]:
    async with grpc.aio.insecure_channel(store_gateway.grpc_target) as channel:
        yield store_pb2_grpc.StoreServiceStub(channel)


def _struct(value: dict[str, object]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


async def test_put_get_search_list_delete(store: store_pb2_grpc.StoreServiceStub) -> None:
    root = namespace()
    for key, value in (("a", {"text": "first", "n": 1}), ("b", {"text": "second", "n": 2})):
        await store.PutItem(store_pb2.PutItemRequest(namespace=[*root, "docs"], key=key, value=_struct(value)))
    await store.PutItem(store_pb2.PutItemRequest(namespace=[*root, "x", "y"], key="c", value=_struct({"n": 3})))

    got = await store.GetItem(store_pb2.GetItemRequest(namespace=[*root, "docs"], key="a"))
    assert got.HasField("item") and list(got.item.namespace) == [*root, "docs"] and got.item.key == "a"
    # Integral numbers stay integers: the value comes back as the JSON text the store holds.
    assert json.loads(got.item.value_json) == {"text": "first", "n": 1} and '"n":1' in got.item.value_json
    assert got.item.created_at.seconds > 0 and not got.item.HasField("score")
    missing = await store.GetItem(store_pb2.GetItemRequest(namespace=[*root, "docs"], key="nope"))
    assert not missing.HasField("item")

    found = await store.SearchItems(store_pb2.SearchItemsRequest(namespace_prefix=root))
    assert sorted(item.key for item in found.items) == ["a", "b", "c"]
    filtered = await store.SearchItems(
        store_pb2.SearchItemsRequest(namespace_prefix=root, filter=_struct({"n": {"$gt": 1}}))
    )
    assert sorted(item.key for item in filtered.items) == ["b", "c"]
    assert not (await store.SearchItems(store_pb2.SearchItemsRequest(namespace_prefix=root, limit=0))).items
    page = await store.SearchItems(store_pb2.SearchItemsRequest(namespace_prefix=root, limit=2, offset=1))
    assert len(page.items) == 2

    listed = await store.ListNamespaces(store_pb2.ListNamespacesRequest(prefix=root))
    assert [list(ns.labels) for ns in listed.namespaces] == [[*root, "docs"], [*root, "x", "y"]]
    cut = await store.ListNamespaces(store_pb2.ListNamespacesRequest(prefix=root, max_depth=2))
    assert [list(ns.labels) for ns in cut.namespaces] == [[*root, "docs"], [*root, "x"]]

    await store.DeleteItem(store_pb2.DeleteItemRequest(namespace=[*root, "docs"], key="a"))
    gone = await store.GetItem(store_pb2.GetItemRequest(namespace=[*root, "docs"], key="a"))
    assert not gone.HasField("item")


async def test_semantic_search_scores(store: store_pb2_grpc.StoreServiceStub, store_backend: str) -> None:
    root = namespace()
    await store.PutItem(store_pb2.PutItemRequest(namespace=root, key="a", value=_struct({"text": "red apples"})))
    await store.PutItem(store_pb2.PutItemRequest(namespace=root, key="b", value=_struct({"text": "blue sky"})))
    await store.PutItem(
        store_pb2.PutItemRequest(namespace=root, key="c", value=_struct({"text": "red apples"}), skip_index=True)
    )
    found = await store.SearchItems(store_pb2.SearchItemsRequest(namespace_prefix=root, query="red apples"))
    if not indexed(store_backend):
        # A Postgres without pgvector: no index, so a query neither ranks nor drops items.
        assert sorted(item.key for item in found.items) == ["a", "b", "c"]
        assert not any(item.HasField("score") for item in found.items)
        return
    assert [item.key for item in found.items] == ["a", "b"]
    assert found.items[0].HasField("score") and found.items[0].score == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    "request_",
    [
        store_pb2.PutItemRequest(namespace=["a.b"], key="k"),
        store_pb2.PutItemRequest(namespace=["a", ""], key="k"),
        store_pb2.PutItemRequest(namespace=[], key="k"),
        store_pb2.PutItemRequest(namespace=["langgraph"], key="k"),
        store_pb2.PutItemRequest(namespace=["a"], key="k", skip_index=True, index_fields=["text"]),
        store_pb2.PutItemRequest(namespace=["a"], key="k", ttl_minutes=-1),
        store_pb2.SearchItemsRequest(namespace_prefix=["a"], limit=-1),
        store_pb2.SearchItemsRequest(namespace_prefix=["a"], filter=_struct({"n": {"$nope": 1}})),
        store_pb2.ListNamespacesRequest(prefix=["a.b"]),
        store_pb2.ListNamespacesRequest(max_depth=0),
    ],
    ids=lambda r: type(r).__name__,
)
async def test_malformed_requests_are_invalid_argument(
    store: store_pb2_grpc.StoreServiceStub, request_: object
) -> None:
    method = {
        store_pb2.PutItemRequest: store.PutItem,
        store_pb2.SearchItemsRequest: store.SearchItems,
        store_pb2.ListNamespacesRequest: store.ListNamespaces,
    }[type(request_)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await method(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()


async def test_the_store_handlers_apply_over_grpc(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path / "gateway.sqlite", config=write_config(tmp_path, auth=True)).start()
    try:
        async with grpc.aio.insecure_channel(proc.grpc_target) as channel:
            store = store_pb2_grpc.StoreServiceStub(channel)
            alice, bob = (("authorization", "Bearer alice"),), (("authorization", "Bearer bob"),)
            put = store_pb2.PutItemRequest(namespace=["notes"], key="k", value=_struct({"v": 1}))
            await store.PutItem(put, metadata=alice)
            # The handler put the caller's identity in front of the namespace.
            got = await store.GetItem(store_pb2.GetItemRequest(namespace=["notes"], key="k"), metadata=alice)
            assert list(got.item.namespace) == ["alice", "notes"]
            theirs = await store.GetItem(store_pb2.GetItemRequest(namespace=["notes"], key="k"), metadata=bob)
            assert not theirs.HasField("item")
            listed = await store.ListNamespaces(store_pb2.ListNamespacesRequest(), metadata=alice)
            assert [list(ns.labels) for ns in listed.namespaces] == [["alice", "notes"]]
            for metadata, code in (
                ((("authorization", "Bearer mallory"),), grpc.StatusCode.PERMISSION_DENIED),
                ((), grpc.StatusCode.UNAUTHENTICATED),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await store.PutItem(put, metadata=metadata)
                assert caught.value.code() == code
    finally:
        proc.kill()


def test_grpcurl_puts_and_searches(gateway: GatewayProcess) -> None:
    # docs/store.md's example, with a namespace of the test's own.
    root = namespace()[0]
    item = {"namespace": [root, "prefs"], "key": "theme", "value": {"color": "dark", "size": 12}}
    put = grpcurl(gateway, "langgraph.gateway.v1.StoreService/PutItem", data=json.dumps(item))
    assert put.returncode == 0 and json.loads(put.stdout) == {}, put.stderr
    search = {"namespace_prefix": [root], "filter": {"color": "dark"}}
    found = grpcurl(gateway, "langgraph.gateway.v1.StoreService/SearchItems", data=json.dumps(search))
    assert found.returncode == 0, found.stderr
    [got] = json.loads(found.stdout)["items"]
    assert (got["namespace"], got["key"], json.loads(got["value_json"])) == ([root, "prefs"], "theme", item["value"])
