"""The backends a deployment keeps its runs in, chosen from the settings:

- default: sqlite (one process owns the file), events in memory, signals within the process;
- `--database-url`: Postgres instead of sqlite, still one process;
- `--database-url` and `--redis-url`: any number of processes sharing Postgres, with the event
  log and the signals between processes on Redis.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.shared.settings import Settings
from gateway.storage.base import Storage
from gateway.storage.signals import LocalSignals, Signals

if TYPE_CHECKING:
    from redis import asyncio as aioredis

    from gateway.storage.redis_backend import RedisEventLog


@dataclass
class Backends:
    storage: Storage
    signals: Signals
    # The event log every process reads (Redis streams); None in one process, whose bus keeps
    # events in memory.
    shared_log: RedisEventLog | None = None
    redis: aioredis.Redis | None = None
    redis_url: str | None = None

    async def start(self) -> None:
        if self.redis is not None:
            from gateway.storage.redis_backend import ping

            assert self.redis_url is not None
            await ping(self.redis, self.redis_url)
        await self.storage.setup()
        if self.shared_log is not None:
            await self.shared_log.start()
        await self.signals.start()

    def checks(self) -> dict[str, Callable[[], Awaitable[object]]]:
        """The backends a readiness probe asks to answer (gateway.process.health)."""
        checks: dict[str, Callable[[], Awaitable[object]]] = {"database": self.storage.ping}
        if self.redis is not None:
            checks["redis"] = self.redis.ping
        return checks

    async def close(self) -> None:
        await self.signals.close()
        if self.shared_log is not None:
            await self.shared_log.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.storage.close()


def open_backends(settings: Settings) -> Backends:
    """The settings' backends, not yet started (`Backends.start`)."""
    storage: Storage
    if settings.database_url:
        from gateway.storage.postgres import PostgresStorage

        storage = PostgresStorage(settings.database_url, max_size=settings.database_pool_size)
    else:
        from gateway.storage.sqlite import SqliteStorage

        storage = SqliteStorage(settings.db)
    if not settings.redis_url:
        return Backends(storage, LocalSignals())
    from gateway.storage.redis_backend import RedisEventLog, RedisSignals, connect

    redis = connect(settings.redis_url)
    log = RedisEventLog(redis, settings.redis_url, settings.redis_prefix, retention=settings.event_retention)
    return Backends(storage, RedisSignals(redis, settings.redis_prefix), log, redis, settings.redis_url)
