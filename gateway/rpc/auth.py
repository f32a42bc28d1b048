"""Who may call what over gRPC: the x-api-key of `--api-key`, langgraph.json's custom auth
(`@auth.authenticate` on each call's metadata, then the call served as its caller), and the
services `http.disable_*` and `--reflection` turn off. Health checks are always open."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from gateway.auth import AuthHandlers, Caller, acting_as
from gateway.rpc.servicers import abort_with
from gateway.rpc.status import deny
from gateway.shared.errors import GatewayError, InvalidArgument
from gateway.shared.util import repeated, repeated_credential

if TYPE_CHECKING:
    from gateway.config.file import Config
    from gateway.shared.settings import Settings

_HEALTH = ("/grpc.health.v1.Health/",)
REFLECTION = ("/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]]


def _refuse(error: GatewayError) -> grpc.RpcMethodHandler:
    """A handler that ends the call with the error as the servicers would, its HTTP status in
    the trailers for the bridge."""

    async def abort(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await abort_with(context, error)

    return grpc.unary_unary_rpc_method_handler(abort)


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, api_key: str, *, open_methods: tuple[str, ...] = _HEALTH) -> None:
        self._key = api_key.encode()
        self._open = open_methods

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if method.startswith(self._open):
            return await continuation(handler_call_details)
        metadata = handler_call_details.invocation_metadata or ()
        if (name := repeated_credential(key for key, _ in metadata)) is not None:
            return _refuse(repeated(name, "metadata"))
        sent = dict(metadata).get("x-api-key")
        if sent is None:
            return deny(grpc.StatusCode.UNAUTHENTICATED, "missing x-api-key metadata", "UNAUTHENTICATED")
        if not hmac.compare_digest(str(sent).encode(), self._key):
            return deny(grpc.StatusCode.UNAUTHENTICATED, "invalid x-api-key", "UNAUTHENTICATED")
        return await continuation(handler_call_details)


class DisabledInterceptor(grpc.aio.ServerInterceptor):
    """Answers UNIMPLEMENTED for the methods under `prefixes` (services turned off)."""

    def __init__(self, prefixes: Collection[str]) -> None:
        self._prefixes = tuple(prefixes)

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if method.startswith(self._prefixes):
            return deny(grpc.StatusCode.UNIMPLEMENTED, f"{method} is turned off on this server", "UNIMPLEMENTED")
        return await continuation(handler_call_details)


def _scope(method: str, context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, Any]:
    """The call as an ASGI HTTP scope, which is what authenticate handlers take apart: a POST
    to the RPC's path, with its (text) metadata as headers."""
    headers = [
        (key.encode("latin-1"), value.encode("latin-1"))
        for key, value in context.invocation_metadata() or ()
        if isinstance(value, str) and value.isascii()
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "2",
        "method": "POST",
        "scheme": "http",
        "path": method,
        "raw_path": method.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "path_params": {},
        "client": None,
        "server": None,
    }


async def _first(requests: Any) -> tuple[Any, AsyncIterator[Any]]:
    """The first message of a request stream, and the stream with it put back. A call that is
    refused before its first message was read may end, for the client, as INTERNAL rather than
    with the refusal (a race in grpc's bidirectional calls); one message is read first."""
    stream = aiter(requests)
    first = await anext(stream, None)

    async def rest() -> AsyncIterator[Any]:
        if first is not None:
            yield first
        async for request in stream:
            yield request

    return first, rest()


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Runs `@auth.authenticate` on each call (but health checks, and reflection unless it
    needs auth) before its handler, which then serves it as the caller: the core asks the
    `@auth.on` handlers as for HTTP. A refusal ends the call with UNAUTHENTICATED (401),
    PERMISSION_DENIED (403) or the code of the status the handler chose."""

    def __init__(self, handlers: AuthHandlers, *, open_methods: tuple[str, ...] = _HEALTH) -> None:
        self._handlers = handlers
        self._open = open_methods

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None or method.startswith(self._open):
            return handler

        async def authenticate(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Caller:
            async def body() -> Any:
                if not isinstance(request, Message):
                    return None
                try:
                    return MessageToDict(request, preserving_proto_field_name=True)
                except ValueError:
                    # NaN or an infinity in a Struct or Value, which the servicer refuses too.
                    raise InvalidArgument("the request holds NaN or an infinity: a JSON number is finite") from None

            try:
                metadata = context.invocation_metadata() or ()
                if (name := repeated_credential(key for key, _ in metadata)) is not None:
                    raise repeated(name, "metadata")
                return await self._handlers.authenticate(_scope(method, context), body)
            except GatewayError as exc:
                await abort_with(context, exc)
            except Exception as exc:
                await abort_with(context, exc, where=f"authenticating {method}")
            raise AssertionError("unreachable")

        if handler.request_streaming and handler.response_streaming:
            inner_ss = handler.stream_stream

            async def stream_stream(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
                first, rest = await _first(requests)
                with acting_as(await authenticate(first, context)):
                    async for item in inner_ss(rest, context):
                        yield item

            return handler._replace(stream_stream=stream_stream)
        if handler.request_streaming:
            inner_su = handler.stream_unary

            async def stream_unary(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                first, rest = await _first(requests)
                with acting_as(await authenticate(first, context)):
                    return await inner_su(rest, context)

            return handler._replace(stream_unary=stream_unary)
        if handler.response_streaming:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
                with acting_as(await authenticate(request, context)):
                    async for item in inner_us(request, context):
                        yield item

            return handler._replace(unary_stream=unary_stream)
        inner_uu = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            with acting_as(await authenticate(request, context)):
                return await inner_uu(request, context)

        return handler._replace(unary_unary=unary_unary)


# The gRPC services behind each route group that langgraph.json's `http.disable_*` turns off:
# a deployment that turns off a group does not want it reachable another way.
_GROUPS = {
    "disable_assistants": ("/langgraph.gateway.v1.AssistantsService/",),
    "disable_threads": ("/langgraph.gateway.v1.ThreadsService/", "/langgraph.gateway.v1.SessionsService/"),
    "disable_runs": ("/langgraph.gateway.v1.RunsService/", "/langgraph.gateway.v1.CronsService/"),
    "disable_store": ("/langgraph.gateway.v1.StoreService/",),
}


def grpc_interceptors(config: Config, settings: Settings) -> tuple[grpc.aio.ServerInterceptor, ...]:
    open_methods = _HEALTH + (REFLECTION if settings.reflection == "open" else ())
    disabled = [prefix for name, prefixes in _GROUPS.items() if getattr(config.http, name) for prefix in prefixes]
    if settings.reflection == "off":
        disabled += REFLECTION
    interceptors: list[grpc.aio.ServerInterceptor] = [DisabledInterceptor(disabled)] if disabled else []
    if settings.api_key:
        interceptors.append(ApiKeyInterceptor(settings.api_key, open_methods=open_methods))
    if config.auth is not None:
        interceptors.append(AuthInterceptor(config.auth, open_methods=open_methods))
    return tuple(interceptors)
