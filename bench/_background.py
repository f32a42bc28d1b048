"""Background load for the stateful-under-load scenario: clients that each stream token runs
(bench/graphs.py's `burst`, `events` custom events) one after another until they are stopped.

For a server the clients run in a worker process of their own, each with its own connection,
so that reading their streams takes nothing from the event loop of the client being timed:
what slows the timed runs is the server, not the benchmark. For the in-process floor they run
in the benchmark's own loop, since that is where the floor's graphs run."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from bench._clients import RUN_TIMEOUT, Client

# Load runs whose errors are kept, beyond the count.
_SAMPLES = 10


@dataclass
class LoadTally:
    """What the load did, from its start until its last run ended."""

    streams: int = 0
    runs: int = 0
    events: int = 0
    seconds: float = 0.0
    errors: int = 0
    samples: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.samples) < _SAMPLES:
            self.samples.append(message)


class Load(Protocol):
    async def start(self, make_client: Callable[[], Client], streams: int) -> None:
        """Starts `streams` clients and returns once each has streamed one whole run."""
        ...

    async def stop(self) -> LoadTally:
        """Lets every client finish the run it is streaming, then closes them."""
        ...

    async def aclose(self) -> None: ...


class InLoop:
    """The load in the running event loop."""

    def __init__(self, events: int) -> None:
        self.events = events
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: list[Client] = []
        self._tally = LoadTally()
        self._since = 0.0

    async def _token_runs(self, client: Client, warm: asyncio.Event) -> None:
        try:
            while not self._stop.is_set():
                t = await client.run("burst", {"count": self.events}, "custom")
                if t.error is not None or t.events != self.events:
                    # A failing client stops rather than hammering the server.
                    self._tally.error(t.error or f"expected {self.events} events, got {t.events}")
                    return
                self._tally.runs += 1
                self._tally.events += t.events
                warm.set()
        finally:
            warm.set()

    async def start(self, make_client: Callable[[], Client], streams: int) -> None:
        self._stop.clear()
        self._tally = LoadTally(streams=streams)
        self._since = time.perf_counter()
        self._clients = [make_client() for _ in range(streams)]
        warm = [asyncio.Event() for _ in self._clients]
        self._tasks = [asyncio.create_task(self._token_runs(c, w)) for c, w in zip(self._clients, warm, strict=True)]
        async with asyncio.timeout(RUN_TIMEOUT):
            await asyncio.gather(*(w.wait() for w in warm))

    async def stop(self) -> LoadTally:
        tally = self._tally
        self._stop.set()
        for result in await asyncio.gather(*self._tasks, return_exceptions=True):
            if isinstance(result, BaseException):
                tally.error(f"{type(result).__name__}: {result}"[:300])
        # Whole runs only, so from the start to the end of the last one.
        tally.seconds = time.perf_counter() - self._since
        for client in self._clients:
            await client.aclose()
        self._tasks, self._clients = [], []
        return tally

    async def aclose(self) -> None:
        if self._tasks:
            await self.stop()


def _worker(conn: Connection, events: int) -> None:
    async def serve() -> None:
        load = InLoop(events)
        while True:
            command = await asyncio.to_thread(conn.recv)
            if command is None:
                break
            try:
                if command[0] == "start":
                    await load.start(command[1], command[2])
                    conn.send(None)
                else:
                    conn.send(await load.stop())
            except Exception as exc:
                conn.send(f"{type(exc).__name__}: {exc}"[:300])
        await load.aclose()

    asyncio.run(serve())
    conn.close()


class InWorker:
    """The load in a worker process, started on first use: `make_client` must pickle (a class,
    or a functools.partial of one), since the worker is spawned."""

    def __init__(self, events: int) -> None:
        self.events = events
        self._conn: Connection | None = None
        self._process: BaseProcess | None = None

    async def _ask(self, command: tuple[Any, ...]) -> Any:
        if self._conn is None:
            ctx = multiprocessing.get_context("spawn")
            self._conn, child = ctx.Pipe()
            self._process = ctx.Process(target=_worker, args=(child, self.events), daemon=True)
            self._process.start()
            child.close()
        self._conn.send(command)
        reply = await asyncio.to_thread(self._conn.recv)
        if isinstance(reply, str):
            raise RuntimeError(f"background load: {reply}")
        return reply

    async def start(self, make_client: Callable[[], Client], streams: int) -> None:
        await self._ask(("start", make_client, streams))

    async def stop(self) -> LoadTally:
        tally: LoadTally = await self._ask(("stop",))
        return tally

    async def aclose(self) -> None:
        if self._conn is None or self._process is None:
            return
        with contextlib.suppress(OSError):
            self._conn.send(None)
        await asyncio.to_thread(self._process.join, 30)
        if self._process.is_alive():
            self._process.kill()
            await asyncio.to_thread(self._process.join, 10)
        self._conn.close()
        self._conn = self._process = None
