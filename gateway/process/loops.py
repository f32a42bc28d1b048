"""Event loops in threads of their own, and work handed between them and the core's loop.

The core's loop runs the graphs and the streams; under load a turn of it takes tens of
milliseconds. I/O that only needs a few quick turns (grpc's servers, Postgres's connections)
runs on a loop of its own in a thread, where its turns cost only the wait for the GIL: a
Postgres connection is then held for the round trip and those waits, not until the core's loop
comes back to the query's coroutine."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
C = TypeVar("C", bound=type)


def _settle(waiter: asyncio.Future[Any], task: asyncio.Task[Any]) -> None:
    if waiter.done():
        return
    if task.cancelled():
        waiter.cancel()
    elif (exc := task.exception()) is not None:
        waiter.set_exception(exc)
    else:
        waiter.set_result(task.result())


def call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: Any) -> None:
    """`callback(*args)` on `loop`, from any thread; dropped when that loop has closed."""
    with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
        loop.call_soon_threadsafe(callback, *args)


def _cancel(started: list[asyncio.Task[Any]]) -> None:
    for task in started:
        task.cancel()


async def hop(coro: Coroutine[Any, Any, T], to: asyncio.AbstractEventLoop, ctx: contextvars.Context | None) -> T:
    """Runs `coro` as a task on the loop `to` (in `ctx`) and waits for it from this loop; a
    cancelled wait cancels the task."""
    here = asyncio.get_running_loop()
    waiter: asyncio.Future[T] = here.create_future()
    box: list[asyncio.Task[T]] = []

    def start() -> None:
        if waiter.done():  # cancelled before it started
            coro.close()
            return
        task = to.create_task(coro, context=ctx) if ctx is not None else to.create_task(coro)
        box.append(task)
        task.add_done_callback(lambda t: call_soon(here, _settle, waiter, t))

    to.call_soon_threadsafe(start)
    try:
        return await waiter
    except asyncio.CancelledError:
        call_soon(to, _cancel, box)
        raise


class IoLoop:
    """An event loop in a daemon thread of its own, of the kind of the loop that starts it
    (uvloop's wakes once for many messages handed over)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, f"the {self._name} loop is not started"
        return self._loop

    @property
    def running(self) -> asyncio.AbstractEventLoop | None:
        """The loop while its thread runs it."""
        thread = self._thread
        return self._loop if thread is not None and thread.is_alive() else None

    def start(self) -> None:
        """Called on the core's loop."""
        if self._loop is None:
            loop = self._loop = type(asyncio.get_running_loop())()
            self._thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
            self._thread.start()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs `coro` on this loop, in a copy of the caller's context, and waits for it
        from the caller's loop; runs it in place when called on this loop."""
        loop = self.running
        if loop is None or loop is asyncio.get_running_loop():
            return await coro
        return await hop(coro, loop, contextvars.copy_context())

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
        if not thread.is_alive():
            loop.close()


class HasIoLoop(Protocol):
    io: IoLoop


def _offloaded(method: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., Coroutine[Any, Any, T]]:
    @functools.wraps(method)
    async def run(self: HasIoLoop, *args: Any, **kwargs: Any) -> T:
        return await self.io.run(method(self, *args, **kwargs))

    return run


def _offloaded_iterator(method: Callable[..., AsyncIterator[T]]) -> Callable[..., AsyncIterator[T]]:
    @functools.wraps(method)
    async def run(self: HasIoLoop, *args: Any, **kwargs: Any) -> AsyncIterator[T]:
        async def collect() -> list[T]:
            return [item async for item in method(self, *args, **kwargs)]

        for item in await self.io.run(collect()):
            yield item

    return run


def public_coroutines(cls: type, *, but: Iterable[str] = ()) -> list[str]:
    """The names of the public async methods `cls` defines itself, less `but`."""
    skip = set(but)
    return [
        name
        for name, value in vars(cls).items()
        if not name.startswith("_")
        and name not in skip
        and (inspect.iscoroutinefunction(value) or inspect.isasyncgenfunction(value))
    ]


def on_io_loop(*names: str) -> Callable[[C], C]:
    """A class decorator: the named async methods (found on the class or its bases) of an
    instance run on the instance's `io` loop once it is started, however they are called.
    An async generator method is run to its end there and its items yielded here."""

    def decorate(cls: C) -> C:
        for name in names:
            method = getattr(cls, name)
            if inspect.isasyncgenfunction(method):
                setattr(cls, name, _offloaded_iterator(method))
            elif inspect.iscoroutinefunction(method):
                setattr(cls, name, _offloaded(method))
            else:
                raise TypeError(f"{cls.__name__}.{name} is not an async method")
        return cls

    return decorate
