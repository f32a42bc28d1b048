from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config.file import load_config
from gateway.core.gateway import Gateway
from gateway.shared.settings import Settings
from gateway.storage import SqliteStorage, Storage
from gateway.storage.postgres import PostgresStorage
from gateway.storage.redis_backend import RedisSignals, connect
from gateway.storage.signals import LocalSignals, Signals
from tests._backends import REDIS, postgres_database, redis_prefix
from tests._server import ROOT

PROTOCOL_CONFIG = ROOT / "tests" / "graphs" / "protocol.json"


@pytest.fixture(params=["sqlite", "postgres"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    """Each backend, set up empty for the test and closed after it."""
    if request.param == "sqlite":
        backend: Storage = SqliteStorage(str(tmp_path / "storage.sqlite"))
        await backend.setup()
        try:
            yield backend
        finally:
            await backend.close()
        return
    with postgres_database(schema=True) as url:
        backend = PostgresStorage(url)
        await backend.setup()
        try:
            yield backend
        finally:
            await backend.close()


@pytest.fixture(params=["local", "redis"])
async def signals(request: pytest.FixtureRequest) -> AsyncIterator[Signals]:
    """The signals of each deployment: one process's (with sqlite), or Redis pub/sub (with
    Postgres), started for the test and closed after it."""
    if request.param == "local":
        yield LocalSignals()
        return
    with redis_prefix() as prefix:
        client = connect(REDIS)
        redis_signals = RedisSignals(client, prefix)
        await redis_signals.start()
        try:
            yield redis_signals
        finally:
            await redis_signals.close()
            await client.aclose()


@pytest.fixture(params=["sqlite", "postgres+redis"])
async def core(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Gateway]:
    """An in-process core of each deployment, with the graphs of tests/graphs/protocol.json."""
    config = load_config(PROTOCOL_CONFIG)
    if request.param == "sqlite":
        async with Gateway(config, Settings(db=str(tmp_path / "core.sqlite"))) as gateway:
            yield gateway
        return
    with postgres_database(schema=True) as url, redis_prefix() as prefix:
        settings = Settings(database_url=url, redis_url=REDIS, redis_prefix=prefix)
        async with Gateway(config, settings) as gateway:
            yield gateway
