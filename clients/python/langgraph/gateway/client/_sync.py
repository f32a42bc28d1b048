"""The sync client: the async client's methods, run on an event loop of its own in a thread.
Each method keeps the async one's signature (ParamSpec), returning its result directly, and
a stream becomes a plain iterator."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import Future
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import grpc
from langgraph.gateway.client._async import (
    AssistantsClient,
    CronsClient,
    GatewayClient,
    RunsClient,
    StoreClient,
    ThreadsClient,
)

P = ParamSpec("P")
T = TypeVar("T")
A = TypeVar("A")


class _Loop:
    """An event loop in a daemon thread, where the channel and every call live."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="gateway-client", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result()

    def iterate(self, stream: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self.run(_next(stream))
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                self.run(aclose())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


async def _next(stream: AsyncIterator[T]) -> T:
    return await anext(stream)


class _Sync(Generic[A]):
    def __init__(self, inner: A, loop: _Loop) -> None:
        self._inner = inner
        self._loop = loop


def _call(method: Callable[Concatenate[A, P], Awaitable[T]]) -> Callable[Concatenate[_Sync[A], P], T]:
    def call(self: _Sync[A], /, *args: P.args, **kwargs: P.kwargs) -> T:
        async def run() -> T:
            return await method(self._inner, *args, **kwargs)

        return self._loop.run(run())

    call.__doc__ = method.__doc__
    return call


def _stream(method: Callable[Concatenate[A, P], AsyncIterator[T]]) -> Callable[Concatenate[_Sync[A], P], Iterator[T]]:
    def call(self: _Sync[A], /, *args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        return self._loop.iterate(method(self._inner, *args, **kwargs))

    call.__doc__ = method.__doc__
    return call


class SyncRunsClient(_Sync[RunsClient]):
    stream = _stream(RunsClient.stream)
    create = _call(RunsClient.create)
    wait = _call(RunsClient.wait)
    join = _call(RunsClient.join)
    join_stream = _stream(RunsClient.join_stream)
    get = _call(RunsClient.get)
    list = _call(RunsClient.list)
    cancel = _call(RunsClient.cancel)
    cancel_many = _call(RunsClient.cancel_many)
    delete = _call(RunsClient.delete)


class SyncThreadsClient(_Sync[ThreadsClient]):
    create = _call(ThreadsClient.create)
    get = _call(ThreadsClient.get)
    update = _call(ThreadsClient.update)
    delete = _call(ThreadsClient.delete)
    copy = _call(ThreadsClient.copy)
    search = _call(ThreadsClient.search)
    count = _call(ThreadsClient.count)
    get_state = _call(ThreadsClient.get_state)
    update_state = _call(ThreadsClient.update_state)
    get_history = _call(ThreadsClient.get_history)


class SyncAssistantsClient(_Sync[AssistantsClient]):
    get = _call(AssistantsClient.get)
    create = _call(AssistantsClient.create)
    update = _call(AssistantsClient.update)
    delete = _call(AssistantsClient.delete)
    search = _call(AssistantsClient.search)
    count = _call(AssistantsClient.count)
    get_versions = _call(AssistantsClient.get_versions)
    set_latest = _call(AssistantsClient.set_latest)
    get_graph = _call(AssistantsClient.get_graph)
    get_schemas = _call(AssistantsClient.get_schemas)
    get_subgraphs = _call(AssistantsClient.get_subgraphs)


class SyncStoreClient(_Sync[StoreClient]):
    put_item = _call(StoreClient.put_item)
    get_item = _call(StoreClient.get_item)
    delete_item = _call(StoreClient.delete_item)
    search_items = _call(StoreClient.search_items)
    list_namespaces = _call(StoreClient.list_namespaces)


class SyncCronsClient(_Sync[CronsClient]):
    create = _call(CronsClient.create)
    get = _call(CronsClient.get)
    delete = _call(CronsClient.delete)
    search = _call(CronsClient.search)
    count = _call(CronsClient.count)


class SyncGatewayClient:
    """The gateway's services, blocking. Close it (or use `with`)."""

    def __init__(self, make_channel: Callable[[], grpc.aio.Channel], **options: Any) -> None:
        self._loop = _Loop()

        async def connect() -> GatewayClient:
            return GatewayClient(make_channel(), **options)

        self._client = self._loop.run(connect())
        self.threads = SyncThreadsClient(self._client.threads, self._loop)
        self.runs = SyncRunsClient(self._client.runs, self._loop)
        self.assistants = SyncAssistantsClient(self._client.assistants, self._loop)
        self.store = SyncStoreClient(self._client.store, self._loop)
        self.crons = SyncCronsClient(self._client.crons, self._loop)

    def close(self) -> None:
        self._loop.run(self._client.close())
        self._loop.stop()

    def __enter__(self) -> SyncGatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
