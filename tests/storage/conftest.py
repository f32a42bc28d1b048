from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.storage import SqliteStorage, Storage


@pytest.fixture(params=["sqlite"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    """Each backend, set up empty for the test and closed after it."""
    backend = SqliteStorage(str(tmp_path / "storage.sqlite"))
    await backend.setup()
    try:
        yield backend
    finally:
        await backend.close()
