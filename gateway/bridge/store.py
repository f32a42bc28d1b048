"""The bridge's store: the `/store` routes (gateway.http._backend.StoreBackend) as StoreService
calls. Item values arrive as JSON text and go into the response as they are."""

from __future__ import annotations

from typing import Any

import grpc
from langgraph.gateway.v1 import store_pb2, store_pb2_grpc

from gateway.bridge.forward import Forwarding, Metadata, Service, each, forward
from gateway.http._backend import StoreBackend
from gateway.wire.agent_json import store_item_json

STORE = Service(store_pb2, store_pb2_grpc.StoreServiceStub)


def _put(fields: dict[str, Any]) -> dict[str, Any]:
    index, ttl = fields.pop("index"), fields.pop("ttl")
    return {
        **fields,
        "skip_index": index is False or index == [],
        "index_fields": index if isinstance(index, list) else [],
        "ttl_minutes": ttl,
    }


def _item(response: store_pb2.GetItemResponse) -> dict[str, Any] | None:
    return store_item_json(response.item, scored=False) if response.HasField("item") else None


class RemoteStore(Forwarding):
    def __init__(self, channel: grpc.aio.Channel, owner: Forwarding) -> None:
        self.stubs = {STORE: STORE.stub(channel)}
        self._owner = owner

    @property
    def metadata(self) -> Metadata:
        return self._owner.metadata

    put = forward(STORE, "PutItem", fields=_put, interface=StoreBackend)
    get = forward(STORE, "GetItem", _item, interface=StoreBackend)
    delete = forward(STORE, "DeleteItem", interface=StoreBackend)
    search = forward(
        STORE, "SearchItems", each("items", lambda item: store_item_json(item, scored=True)), interface=StoreBackend
    )
    list_namespaces = forward(
        STORE, "ListNamespaces", each("namespaces", lambda ns: list(ns.labels)), interface=StoreBackend
    )
