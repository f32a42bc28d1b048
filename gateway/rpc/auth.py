"""x-api-key for gRPC calls: every RPC but health checks needs the key in its metadata."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

_OPEN = ("/grpc.health.v1.Health/",)


def _deny(message: str) -> grpc.RpcMethodHandler:
    async def abort(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return grpc.unary_unary_rpc_method_handler(abort)


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, api_key: str) -> None:
        self._key = api_key.encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if method.startswith(_OPEN):
            return await continuation(handler_call_details)
        sent = dict(handler_call_details.invocation_metadata or ()).get("x-api-key")
        if sent is None:
            return _deny("missing x-api-key metadata")
        if not hmac.compare_digest(str(sent).encode(), self._key):
            return _deny("invalid x-api-key")
        return await continuation(handler_call_details)
