"""The core assembled from the settings: storage (with its checkpointer), the event bus, the
signals between processes, the scheduler and executor behind the run service, threads,
assistants, crons and thread streams.

The backends (storage, signals, the shared event log) come from `gateway.storage.open`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gateway import storage
from gateway.config.file import Config
from gateway.core.access import Access
from gateway.core.assistants import Assistants
from gateway.core.bus import LocalBus
from gateway.core.crons import Crons
from gateway.core.executor import Executor
from gateway.core.graphs import Graphs
from gateway.core.metrics import RUNS_QUEUED
from gateway.core.scheduler import Scheduler
from gateway.core.service import RunService
from gateway.core.store import StoreService
from gateway.core.thread_stream import ThreadStreams
from gateway.core.threads import Threads
from gateway.shared.settings import Settings
from gateway.storage.store import Store

logger = logging.getLogger("gateway")


class Gateway:
    def __init__(self, config: Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.backends = storage.open(settings)
        self.storage = self.backends.storage
        self.signals = signals = self.backends.signals
        self.bus = LocalBus(self.storage, settings, shared=self.backends.shared_log)
        if self.backends.shared_log is not None:
            self.bus.connect(signals)
        access = Access(config.auth, self.storage)
        # LangGraph's BaseStore, on the storage's database: every run's, and the store API's.
        self._store = Store(config.store)
        self.store = StoreService(self._store, access)
        graphs = Graphs(self._store)
        self.assistants = Assistants(self.storage, config.graphs, graphs, access=access)
        executor = Executor(self.storage, graphs, run_timeout=settings.run_timeout)
        self.scheduler = Scheduler(self.storage, self.bus, executor, self.assistants, signals, settings)
        self.runs = RunService(
            self.storage,
            self.bus,
            self.scheduler,
            self.assistants,
            access=access,
            idempotency_window=settings.idempotency_window,
        )
        self.bus.ended = self.runs.ended
        self.threads = Threads(
            self.storage,
            self.assistants,
            self.scheduler,
            self.bus,
            graphs,
            access=access,
            idempotency_window=settings.idempotency_window,
        )
        self.assistants.cascade = self.threads.assistant_deleted
        self.crons = Crons(self.storage, self.assistants, self.runs, access=access, interval=settings.cron_interval)
        self.thread_streams = ThreadStreams(self.runs, self.scheduler, self.storage, signals)
        self._pruner: asyncio.Task[None] | None = None
        self.draining = False

    async def start(self) -> None:
        await self.backends.start()
        await self._store.open(self.storage)
        await self.assistants.setup()
        await self.scheduler.start()
        await self._prune_once()
        self._pruner = asyncio.create_task(self._prune(), name="prune-events")
        self.crons.start()

    async def _prune_once(self) -> None:
        pruned = await self.bus.prune()
        if pruned:
            logger.info("pruned %d events of resumable runs older than %.0f s", pruned, self.settings.event_retention)
        pruned = await self.storage.prune_request_keys()
        if pruned:
            logger.info("pruned %d request ids past the idempotency window", pruned)

    async def _prune(self) -> None:
        """Prunes every tenth of the event retention (at most every minute) until cancelled."""
        interval = min(max(self.settings.event_retention / 10, 0.1), 60.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._prune_once()
            except Exception:
                logger.exception("pruning the event log or the request ids failed; retrying")

    async def drain(self, grace: float) -> None:
        """Takes no new runs; live ones get `grace` seconds to finish, then are interrupted
        (or, in a shared deployment, handed back to the queue)."""
        self.draining = True
        await self.crons.close()
        await self.scheduler.shutdown(grace)

    def dependency_checks(self) -> dict[str, Callable[[], Awaitable[object]]]:
        """The backends a readiness probe asks to answer (gateway.process.health)."""
        return self.backends.checks()

    async def refresh_metrics(self) -> None:
        """The gauges read rather than counted, before a scrape: the queue's depth."""
        RUNS_QUEUED.set(await self.storage.count_runs(("pending",)))

    async def close(self) -> None:
        await self.crons.close()
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        await self._store.close()
        await self.backends.close()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.shield(self._stop())

    async def _stop(self) -> None:
        await self.drain(0)
        await self.close()
