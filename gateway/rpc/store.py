"""The StoreService servicer: the store's five operations over gRPC, translated to and from the
core's StoreService (gateway.core.store), which applies the auth handlers."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from langgraph.gateway.v1 import store_pb2, store_pb2_grpc

from gateway.core.gateway import Gateway
from gateway.rpc.servicers import unary
from gateway.shared.errors import InvalidArgument
from gateway.shared.serde import dumps
from gateway.wire import convert

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def item(json: dict[str, Any]) -> store_pb2.Item:
    msg = store_pb2.Item(
        namespace=json["namespace"],
        key=json["key"],
        value_json=dumps(json["value"]).decode(),
        created_at=convert.timestamp(json["created_at"]),
        updated_at=convert.timestamp(json["updated_at"]),
    )
    if json.get("score") is not None:
        msg.score = json["score"]
    return msg


def _not_negative(value: int, name: str) -> int:
    if value < 0:
        raise InvalidArgument(f"{name} must not be negative")
    return value


class StoreService(store_pb2_grpc.StoreServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self._store = gateway.store

    @unary
    async def PutItem(self, request: store_pb2.PutItemRequest, context: Context) -> store_pb2.PutItemResponse:
        if request.skip_index and request.index_fields:
            raise InvalidArgument("skip_index and index_fields: give one or the other")
        await self._store.put(
            list(request.namespace),
            request.key,
            convert.struct_to_dict(request, "value"),
            index=False if request.skip_index else list(request.index_fields) or None,
            ttl=request.ttl_minutes if request.HasField("ttl_minutes") else None,
        )
        return store_pb2.PutItemResponse()

    @unary
    async def GetItem(self, request: store_pb2.GetItemRequest, context: Context) -> store_pb2.GetItemResponse:
        found = await self._store.get(
            list(request.namespace),
            request.key,
            refresh_ttl=request.refresh_ttl if request.HasField("refresh_ttl") else None,
        )
        return store_pb2.GetItemResponse(item=item(found) if found is not None else None)

    @unary
    async def DeleteItem(self, request: store_pb2.DeleteItemRequest, context: Context) -> store_pb2.DeleteItemResponse:
        await self._store.delete(list(request.namespace), request.key)
        return store_pb2.DeleteItemResponse()

    @unary
    async def SearchItems(
        self, request: store_pb2.SearchItemsRequest, context: Context
    ) -> store_pb2.SearchItemsResponse:
        found = await self._store.search(
            list(request.namespace_prefix),
            filter=convert.struct_to_dict(request, "filter") or None,
            limit=_not_negative(request.limit, "limit") if request.HasField("limit") else 10,
            offset=_not_negative(request.offset, "offset"),
            query=request.query or None,
            refresh_ttl=request.refresh_ttl if request.HasField("refresh_ttl") else None,
        )
        return store_pb2.SearchItemsResponse(items=[item(json) for json in found])

    @unary
    async def ListNamespaces(
        self, request: store_pb2.ListNamespacesRequest, context: Context
    ) -> store_pb2.ListNamespacesResponse:
        found = await self._store.list_namespaces(
            prefix=list(request.prefix) or None,
            suffix=list(request.suffix) or None,
            max_depth=request.max_depth if request.HasField("max_depth") else None,
            limit=_not_negative(request.limit, "limit") if request.HasField("limit") else 100,
            offset=_not_negative(request.offset, "offset"),
        )
        return store_pb2.ListNamespacesResponse(namespaces=[store_pb2.StoreNamespace(labels=ns) for ns in found])
