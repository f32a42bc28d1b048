"""gRPC's I/O on an event loop of its own, in a thread; every call's work on the core's loop.

grpc.aio takes a server's calls one at a time, and each call's every step (accepted, request
read, message sent) comes back to Python through the event loop that the server runs on: a few
turns of it apiece. On the loop that also runs hundreds of graphs and streams, a turn takes
milliseconds, and a burst of new calls queued for seconds before its handlers ran, however
many servers shared the port. On a loop of their own, with nothing else on it, those turns
cost only the wait for the GIL. A shorter switch interval would shorten that wait but costs
CPU per event on both edges, so CPython's default stays. The figures: docs/performance.md.

So the servers here carry bytes only. Each call's handler is looked up through the
interceptors, run, and its messages (de)serialized on the core's loop, as before, in one
`contextvars.Context` per call, so that what an interceptor sets (the caller) holds for the
whole call. The handler gets a `ServicerContext` stand-in whose abort, code and trailers are
applied to the real call when its handler returns. A response stream is pulled one message
at a time, as grpc pulls it: the next is asked for once the last has been sent, so the runs'
batches grow while the network is slow. A cancelled call cancels its handler's step.

`RunStream`, one event per message, pays for that: its messages wait for the I/O thread to get
the GIL (the events that were ready together cross to it in one hand-off, `Several`). Letting
its handler send messages ahead would make it faster, but a busy I/O thread then takes the GIL
from the core's and its storage threads so often that small runs beside such streams slow down
several times over: batches (`RunStreamBatch`) are the fast stream (docs/performance.md)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar, cast

import grpc

from gateway.process.loops import call_soon, hop
from gateway.rpc.status import deny

T = TypeVar("T")

_END = object()


class Several(list[Any]):
    """Messages that a streaming handler yields at once, to go out one after the other: they
    cross from the core's loop to the I/O loop in one hand-off, not one each. A stream of one
    event per message (RunStream) yields the events that were ready together this way."""


class CallStatus:
    """What a handler says of its call's end (abort, code, details, trailers), as grpc.aio's
    ServicerContext takes it: kept here, and applied by whatever serves the call (the I/O loop's
    real call, or the HTTP port's Connect and gRPC-Web answer)."""

    def __init__(self) -> None:
        self._code: grpc.StatusCode | None = None
        self._details: str | None = None
        self._trailers: tuple[tuple[str, Any], ...] = ()
        self.aborted = False

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        if code == grpc.StatusCode.OK:
            raise ValueError("abort() with OK")
        self._code, self._details, self.aborted = code, details, True
        if trailing_metadata:
            self._trailers = tuple(trailing_metadata)
        raise grpc.aio.AbortError()

    async def abort_with_status(self, status: Any) -> None:
        await self.abort(status.code, status.details, status.trailing_metadata)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def set_details(self, details: str) -> None:
        self._details = details

    def details(self) -> str | None:
        return self._details

    def set_trailing_metadata(self, trailing_metadata: Any) -> None:
        self._trailers = tuple(trailing_metadata)

    def trailing_metadata(self) -> Any:
        return self._trailers


class ServicerContext(CallStatus):
    """What a handler on the core's loop sees of its call on the I/O loop."""

    def __init__(self, real: grpc.aio.ServicerContext[Any, Any], io: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._real = real
        self._io = io
        self._metadata = real.invocation_metadata()
        self._peer = real.peer()
        self._writes: asyncio.Queue[Any] | None = None

    # What the call brought
    def invocation_metadata(self) -> Any:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    def peer_identities(self) -> Iterable[bytes] | None:
        return self._real.peer_identities()

    def peer_identity_key(self) -> str | None:
        return self._real.peer_identity_key()

    def auth_context(self) -> Any:
        return self._real.auth_context()

    def time_remaining(self) -> float | None:
        return self._real.time_remaining()

    def cancelled(self) -> bool:
        return self._real.cancelled()

    def done(self) -> bool:
        return self._real.done()

    def is_active(self) -> bool:
        return not self._real.done()

    # A handler that writes its messages instead of yielding them (grpc_health's Watch does)
    async def write(self, message: Any) -> None:
        if self._writes is None:
            raise RuntimeError("write() is for a response-streaming handler that returns no iterator")
        await self._writes.put(message)
        # As grpc's own: back once the message is sent, which the bridge's next pull tells.
        await self._writes.join()

    async def written(self, handler: Coroutine[Any, Any, Any]) -> AsyncIterator[Any]:
        """The messages `handler` writes, as the stream of a handler that yields them."""
        writes: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
        self._writes = writes
        task = asyncio.ensure_future(handler)
        get: asyncio.Future[Any] | None = None
        try:
            while True:
                get = asyncio.ensure_future(writes.get())
                await asyncio.wait((get, task), return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    task.result()  # the handler's end: its exception (an abort) is the call's
                    return
                yield get.result()
                writes.task_done()
        finally:
            for future in (get, task):
                if future is not None and not future.done():
                    future.cancel()
            await asyncio.wait({task})

    # Before the handler's next message: handed to the I/O loop ahead of it
    def set_compression(self, compression: Any) -> None:
        call_soon(self._io, self._real.set_compression, compression)

    def disable_next_message_compression(self) -> None:
        call_soon(self._io, self._real.disable_next_message_compression)

    async def send_initial_metadata(self, initial_metadata: Any) -> None:
        await hop(self._real.send_initial_metadata(initial_metadata), self._io, None)

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        core = asyncio.get_running_loop()
        call_soon(self._io, self._real.add_done_callback, lambda _: call_soon(core, callback, self))

    async def apply(self) -> None:
        """On the I/O loop, once the handler is over: what it set, onto the real call."""
        real = self._real
        if self.aborted:
            assert self._code is not None
            await real.abort(self._code, self._details or "", trailing_metadata=self._trailers)
        if self._trailers:
            real.set_trailing_metadata(self._trailers)
        if self._code is not None:
            real.set_code(self._code)
        if self._details is not None:
            real.set_details(self._details)


class Lookup:
    """Collects the handlers that generated `add_*_to_server` functions register."""

    def __init__(self) -> None:
        self.handlers: list[grpc.GenericRpcHandler] = []

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self.handlers.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        pass  # the generic handlers serve the same methods

    def __call__(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        for generic in self.handlers:
            handler = generic.service(details)
            if handler is not None:
                return handler
        return None


async def resolve(
    lookup: Lookup, interceptors: Sequence[grpc.aio.ServerInterceptor], details: grpc.HandlerCallDetails
) -> grpc.RpcMethodHandler | None:
    """A method's handler as grpc.aio applies server interceptors: the first one outermost."""

    async def step(index: int, d: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if index == len(interceptors):
            return lookup(d)
        return await interceptors[index].intercept_service(functools.partial(step, index + 1), d)

    return await step(0, details)


def _unimplemented() -> grpc.RpcMethodHandler:
    return deny(grpc.StatusCode.UNIMPLEMENTED, "Method not found!", "UNIMPLEMENTED")


class _Call:
    """One call's handler, on the core's loop: each step runs as a task of its own there, all
    in the call's context, one after the other."""

    def __init__(
        self, bridge: Bridge, details: grpc.HandlerCallDetails, context: ServicerContext, streaming: bool
    ) -> None:
        self._bridge = bridge
        self._details = details
        self.context = context
        self._streaming_requests = streaming
        self._responses: AsyncIterator[Any] | None = None
        self._result: Awaitable[Any] | None = None
        self._serialize: Callable[[Any], bytes] | None = None
        self._step: asyncio.Task[Any] | None = None
        # Whether the handler answers one message: nothing follows the first.
        self.single = False

    async def start(self, request: Any) -> Any:
        """Looks the handler up through the interceptors, starts it on `request` (bytes, or an
        async iterator of bytes on the I/O loop) and returns its first response, as next()."""
        handler = await self._bridge.resolve(self._details) or _unimplemented()
        parse = handler.request_deserializer
        self._serialize = handler.response_serializer
        if self._streaming_requests:
            requests = self._requests(request, parse)
            argument: Any = requests if handler.request_streaming else await anext(requests, None)
        else:
            argument = parse(request) if parse is not None else request
            if handler.request_streaming:
                argument = _one(argument)
        context: Any = self.context
        if handler.response_streaming:
            behaviour = handler.stream_stream if handler.request_streaming else handler.unary_stream
            responses = behaviour(argument, context)
            self._responses = self.context.written(responses) if asyncio.iscoroutine(responses) else responses
        else:
            behaviour = handler.stream_unary if handler.request_streaming else handler.unary_unary
            self._result = behaviour(argument, context)
            self.single = True
        return await self.next()

    async def _requests(
        self, requests: AsyncIterator[bytes], parse: Callable[[bytes], Any] | None
    ) -> AsyncIterator[Any]:
        io = self._bridge.io
        while (data := await hop(_next(requests), io, None)) is not _END:
            yield parse(cast(bytes, data)) if parse is not None else data

    async def next(self) -> Any:
        """The next response, serialized; _END after the last."""
        self._step = asyncio.current_task()
        if self._result is not None:
            result, self._result = self._result, None
            message = await result
        elif self._responses is not None:
            message = await anext(self._responses, _END)
        else:
            message = _END
        if message is _END or self._serialize is None:
            return message
        if type(message) is Several:
            return Several(map(self._serialize, message))
        return self._serialize(message)

    async def close(self) -> None:
        step = self._step
        if step is not None and step is not asyncio.current_task() and not step.done():
            await asyncio.wait({step})  # a cancelled step may still be cleaning up
        if isinstance(self._result, Coroutine):
            self._result.close()  # never started: the call went before its handler ran
        responses = self._responses
        if responses is not None and hasattr(responses, "aclose"):
            await responses.aclose()


async def _next(iterator: AsyncIterator[T]) -> T | object:
    return await anext(iterator, _END)


async def _one(value: T) -> AsyncIterator[T]:
    yield value


class Bridge(grpc.GenericRpcHandler):
    """The only handler of the servers on the I/O loop: every method, as bytes, to the core."""

    def __init__(
        self,
        lookup: Lookup,
        interceptors: Sequence[grpc.aio.ServerInterceptor],
        core: asyncio.AbstractEventLoop,
        io: asyncio.AbstractEventLoop,
    ) -> None:
        self._lookup = lookup
        self._interceptors = tuple(interceptors)
        self.core = core
        self.io = io
        self._context = contextvars.copy_context()

    async def resolve(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return await resolve(self._lookup, self._interceptors, details)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        # The shape of the call is the registered method's; an unknown method is looked up
        # through the interceptors too (a missing API key is refused before "not found").
        raw = self._lookup(handler_call_details)
        request_streaming = raw is not None and raw.request_streaming
        response_streaming = raw is not None and raw.response_streaming
        details = handler_call_details

        async def responses(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            call = _Call(self, details, ServicerContext(context, self.io), request_streaming)
            ctx = self._context.copy()
            try:
                message = await hop(call.start(request), self.core, ctx)
                while message is not _END:
                    if type(message) is Several:
                        for each in message:
                            yield each
                    else:
                        yield message
                    message = _END if call.single else await hop(call.next(), self.core, ctx)
            except BaseException:
                if call.context.aborted:
                    await call.context.apply()  # raises the call's AbortError
                raise
            finally:
                self._close(call, ctx)
            await call.context.apply()

        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            messages = [message async for message in responses(request, context)]
            if len(messages) != 1:
                raise RuntimeError(f"{details.method} answered {len(messages)} messages, not one")
            return messages[0]

        if request_streaming and response_streaming:
            return grpc.stream_stream_rpc_method_handler(responses)
        if request_streaming:
            return grpc.stream_unary_rpc_method_handler(unary)
        if response_streaming:
            return grpc.unary_stream_rpc_method_handler(responses)
        return grpc.unary_unary_rpc_method_handler(unary)

    def _close(self, call: _Call, ctx: contextvars.Context) -> None:
        def close() -> None:
            task = self.core.create_task(call.close(), context=ctx)
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

        call_soon(self.core, close)
