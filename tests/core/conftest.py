from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.core.gateway import Gateway
from gateway.shared.settings import Settings
from tests._reference import config

MakeCore = Callable[..., AbstractAsyncContextManager[Gateway]]


@pytest.fixture
def make_core(tmp_path: Path) -> MakeCore:
    """An in-process core on a sqlite file of the test's own, with the test graphs."""

    @asynccontextmanager
    async def make(**settings: Any) -> AsyncIterator[Gateway]:
        async with Gateway(config(), Settings(db=str(tmp_path / "core.sqlite"), **settings)) as core:
            yield core

    return make
