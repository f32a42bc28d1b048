"""The core assembled from the settings: storage (with its checkpointer), the event bus, the
scheduler and executor behind the run service, threads, assistants and thread streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from gateway.config import Config
from gateway.core.access import Access
from gateway.core.assistants import Assistants
from gateway.core.bus import LocalBus
from gateway.core.executor import Executor
from gateway.core.scheduler import Scheduler
from gateway.core.service import RunService
from gateway.core.thread_stream import ThreadStreams
from gateway.core.threads import Threads
from gateway.records import UNFINISHED, ThreadChange
from gateway.serde import dumps
from gateway.settings import Settings
from gateway.storage import SqliteStorage, Storage

logger = logging.getLogger("gateway")


class Gateway:
    def __init__(self, config: Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.storage: Storage = SqliteStorage(settings.db)
        self.bus = LocalBus(self.storage, settings)
        access = Access(config.auth, self.storage)
        self.assistants = Assistants(self.storage, config.graphs, access=access)
        executor = Executor(self.storage, self.assistants, run_timeout=settings.run_timeout)
        self.scheduler = Scheduler(self.storage, self.bus, executor, settings)
        self.runs = RunService(self.storage, self.bus, self.scheduler, self.assistants, access=access)
        self.threads = Threads(self.storage, self.assistants, self.scheduler, self.bus, access=access)
        self.thread_streams = ThreadStreams(self.runs, self.scheduler, self.storage)
        self._pruner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.storage.setup()
        await self.assistants.setup()
        await self._recover()
        pruned = await self.bus.prune()
        if pruned:
            logger.info("pruned %d events of resumable runs older than %.0f s", pruned, self.settings.event_retention)
        self._pruner = asyncio.create_task(self._prune(), name="prune-events")

    async def _recover(self) -> None:
        """Runs the previous process left unfinished cannot go on: mark them and free their threads."""
        error = dumps({"error": "ServerRestarted", "message": "the gateway stopped while the run was active"})
        for run in await self.storage.runs_with_status(UNFINISHED):
            change = ThreadChange(status="error", error=error)
            await self.storage.finish_run(run.run_id, run.thread_id, "error", change)
            logger.warning("run %s on thread %s was %s when the gateway stopped", run.run_id, run.thread_id, run.status)

    async def _prune(self) -> None:
        while True:
            try:
                await self.bus.prune_forever()
            except Exception:
                logger.exception("pruning the event log failed; retrying")
                await asyncio.sleep(1)

    async def drain(self, grace: float) -> None:
        """Takes no new runs; live ones get `grace` seconds to finish, then are interrupted."""
        await self.scheduler.shutdown(grace)

    async def close(self) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        await self.storage.close()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.shield(self._stop())

    async def _stop(self) -> None:
        await self.drain(0)
        await self.close()
