"""gRPC calls counted and timed by method and status code (grpc_server_* metrics, the names
go-grpc-prometheus and its dashboards use), outermost of the server's interceptors so that
calls refused by auth count too. It also marks what the call does as coming through gRPC."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from gateway.process.metrics import GRPC_HANDLED, GRPC_SECONDS, GRPC_STARTED, edge

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]]


class _Method:
    """One method's metrics, bound once."""

    __slots__ = ("handled", "labels", "seconds", "started")

    def __init__(self, full_name: str, kind: str) -> None:
        service, _, method = full_name.lstrip("/").rpartition("/")
        self.labels = (service, method, kind)
        self.started = GRPC_STARTED.labels(*self.labels)
        self.seconds = GRPC_SECONDS.labels(*self.labels)
        self.handled: dict[grpc.StatusCode, Any] = {}

    def done(self, code: grpc.StatusCode, started: float) -> None:
        self.seconds.observe(time.perf_counter() - started)
        child = self.handled.get(code)
        if child is None:
            child = self.handled[code] = GRPC_HANDLED.labels(*self.labels, code.name)
        child.inc()


def _code(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException | None) -> grpc.StatusCode:
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        # The client left (or its deadline passed) before the call ended.
        return grpc.StatusCode.CANCELLED
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    # Unhandled exceptions end the call with UNKNOWN.
    return (
        grpc.StatusCode.UNKNOWN if exc is not None and not isinstance(exc, grpc.aio.AbortError) else grpc.StatusCode.OK
    )


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        self._methods: dict[tuple[str, str], _Method] = {}

    def _method(self, name: str, kind: str) -> _Method:
        method = self._methods.get((name, kind))
        if method is None:
            method = self._methods[(name, kind)] = _Method(name, kind)
        return method

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        name = handler_call_details.method
        if handler.request_streaming and handler.response_streaming:
            m = self._method(name, "bidi_stream")
            return handler._replace(stream_stream=_streaming(m, handler.stream_stream))
        if handler.request_streaming:
            m = self._method(name, "client_stream")
            return handler._replace(stream_unary=_unary(m, handler.stream_unary))
        if handler.response_streaming:
            m = self._method(name, "server_stream")
            return handler._replace(unary_stream=_streaming(m, handler.unary_stream))
        m = self._method(name, "unary")
        return handler._replace(unary_unary=_unary(m, handler.unary_unary))


def _unary(m: _Method, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        edge.set("grpc")
        m.started.inc()
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            return await behavior(request, context)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            m.done(_code(context, failure), started)

    return call


def _streaming(m: _Method, behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        edge.set("grpc")
        m.started.inc()
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            async for response in behavior(request, context):
                yield response
        except BaseException as exc:
            failure = exc
            raise
        finally:
            m.done(_code(context, failure), started)

    return call
