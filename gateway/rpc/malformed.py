"""Requests that protobuf cannot parse get INVALID_ARGUMENT with the reason, not UNKNOWN.

grpc answers a request deserializer's exception with UNKNOWN and the exception's text; that
happens for corrupt bytes and for messages nested past protobuf's limit of 100 levels, which a
JSON value in a Struct or Value field reaches at about 49 levels (each level is two messages).
This interceptor lets such a request through as a MalformedRequest, which the servicers refuse.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

# The gateway's own services: health checks and reflection keep grpc's handling.
_SERVICES = ("/langgraph.gateway.v1.",)


class MalformedRequest:
    def __init__(self, method: str, error: DecodeError) -> None:
        reason = str(error)
        if "MaxDepth" in reason:
            reason = (
                "it nests messages more than 100 levels deep (a JSON value in a Struct or Value field "
                "such as input, command, config, context or metadata: about 49 levels)"
            )
        elif "corrupt" in reason.lower() or not reason:
            reason = "its wire format is corrupt"
        self.message = f"malformed {method.rsplit('/', 1)[-1]} request: {reason}"


def _lenient(method: str, deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as exc:
            return MalformedRequest(method, exc)

    return parse


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        # Per method: the handler as registered, and the same with the lenient deserializer.
        self._handlers: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None or not method.startswith(_SERVICES) or handler.request_deserializer is None:
            return handler
        cached = self._handlers.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        # RpcMethodHandler is a namedtuple; only its deserializer changes.
        lenient = handler._replace(request_deserializer=_lenient(method, handler.request_deserializer))
        self._handlers[method] = (handler, lenient)
        return lenient
