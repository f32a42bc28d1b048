from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.storage import SqliteStorage, Storage
from gateway.storage.postgres import PostgresStorage
from tests._backends import postgres_database


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
    with postgres_database() as url:
        backend = PostgresStorage(url)
        await backend.setup()
        try:
            yield backend
        finally:
            await backend.close()
