"""The core assembled: storage, checkpointer, assistants, threads and runs over one config."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from gateway.config import Config
from gateway.core.assistants import Assistants
from gateway.core.runs import RunManager
from gateway.core.thread_stream import ThreadStreams
from gateway.core.threads import Threads
from gateway.storage import SqliteStorage

logger = logging.getLogger("gateway")


class Gateway:
    def __init__(self, config: Config, db_path: str, **run_options: Any) -> None:
        self.config = config
        self.db_path = db_path
        self.storage = SqliteStorage(db_path)
        self.checkpointer: AsyncSqliteSaver | None = None
        self.assistants = Assistants(self.storage, config.graphs)
        self.threads: Threads
        self.runs: RunManager
        self.thread_streams: ThreadStreams
        # RunManager options: run_timeout, max_queued_runs, event_retention, channel_capacity.
        self._run_options = run_options

    async def start(self) -> None:
        await self.storage.setup()
        self.checkpointer = AsyncSqliteSaver(self.storage.conn)
        # The checkpointer shares the storage's connection and serialises on the same lock.
        self.checkpointer.lock = self.storage.lock
        await self.checkpointer.setup()
        await self.assistants.setup()
        self.threads = Threads(self.storage, self.assistants, self.checkpointer)
        self.runs = RunManager(self.storage, self.assistants, self.checkpointer, **self._run_options)
        self.thread_streams = ThreadStreams(self.runs)
        # Thread streams follow every run, whichever edge created it.
        self.runs.on_created.append(self.thread_streams.run_created)
        await self.runs.recover()

    async def stop(self, grace: float = 10.0) -> None:
        await self.runs.shutdown(grace)
        await self.storage.close()

    def thread_busy(self, thread_id: str) -> bool:
        return self.runs.thread_busy(thread_id)

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.shield(self.stop(0))
