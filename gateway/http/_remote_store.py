"""The bridge's store (gateway.http.remote): the `/store` routes as StoreService calls. Item
values arrive as JSON text and go into the response as they are."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC
from typing import Any

import grpc
import orjson
from google.protobuf import timestamp_pb2
from langgraph.gateway.v1 import store_pb2, store_pb2_grpc

from gateway.http._backend import Json
from gateway.wire import convert

# RemoteBackend._call: one RPC with the request's credentials, its errors as the core's.
Call = Callable[[Callable[..., Awaitable[Any]], Any], Awaitable[Any]]


def _iso(ts: timestamp_pb2.Timestamp) -> str:
    return ts.ToDatetime(tzinfo=UTC).isoformat()


def _item(msg: store_pb2.Item, *, scored: bool) -> Json:
    item: Json = {
        "namespace": list(msg.namespace),
        "key": msg.key,
        "value": orjson.Fragment(msg.value_json.encode() or b"{}"),
        "created_at": _iso(msg.created_at),
        "updated_at": _iso(msg.updated_at),
    }
    if scored:
        item["score"] = msg.score if msg.HasField("score") else None
    return item


class RemoteStore:
    def __init__(self, channel: grpc.aio.Channel, call: Call) -> None:
        self._stub = store_pb2_grpc.StoreServiceStub(channel)
        self._call = call

    async def put(
        self, namespace: Sequence[str], key: str, value: Json, *, index: bool | list[str] | None, ttl: float | None
    ) -> None:
        request = store_pb2.PutItemRequest(
            namespace=namespace,
            key=key,
            value=convert.dict_to_struct(value),
            skip_index=index is False or index == [],
            index_fields=index if isinstance(index, list) else [],
        )
        if ttl is not None:
            request.ttl_minutes = ttl
        await self._call(self._stub.PutItem, request)

    async def get(self, namespace: Sequence[str], key: str, *, refresh_ttl: bool | None) -> Json | None:
        request = store_pb2.GetItemRequest(namespace=namespace, key=key)
        if refresh_ttl is not None:
            request.refresh_ttl = refresh_ttl
        response: store_pb2.GetItemResponse = await self._call(self._stub.GetItem, request)
        return _item(response.item, scored=False) if response.HasField("item") else None

    async def delete(self, namespace: Sequence[str], key: str) -> None:
        await self._call(self._stub.DeleteItem, store_pb2.DeleteItemRequest(namespace=namespace, key=key))

    async def search(
        self,
        namespace_prefix: Sequence[str],
        *,
        filter: Json | None,
        limit: int,
        offset: int,
        query: str | None,
        refresh_ttl: bool | None,
    ) -> list[Json]:
        request = store_pb2.SearchItemsRequest(
            namespace_prefix=namespace_prefix,
            filter=convert.dict_to_struct(filter),
            limit=limit,
            offset=offset,
            query=query or "",
        )
        if refresh_ttl is not None:
            request.refresh_ttl = refresh_ttl
        response: store_pb2.SearchItemsResponse = await self._call(self._stub.SearchItems, request)
        return [_item(item, scored=True) for item in response.items]

    async def list_namespaces(
        self,
        *,
        prefix: Sequence[str] | None,
        suffix: Sequence[str] | None,
        max_depth: int | None,
        limit: int,
        offset: int,
    ) -> list[list[str]]:
        request = store_pb2.ListNamespacesRequest(prefix=prefix or [], suffix=suffix or [], limit=limit, offset=offset)
        if max_depth is not None:
            request.max_depth = max_depth
        response: store_pb2.ListNamespacesResponse = await self._call(self._stub.ListNamespaces, request)
        return [list(ns.labels) for ns in response.namespaces]
