from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests._backends import REDIS, postgres_database, redis_prefix
from tests._server import GatewayProcess

Replica = Callable[..., GatewayProcess]


@pytest.fixture
def shared_backends() -> Iterator[tuple[str, ...]]:
    """The command-line arguments of a deployment on a Postgres database and Redis key prefix of
    the test's own."""
    with postgres_database(schema=True) as url, redis_prefix() as prefix:
        yield ("--database-url", url, "--redis-url", REDIS, "--redis-prefix", prefix)


@pytest.fixture
def replica(shared_backends: tuple[str, ...], tmp_path: Path) -> Iterator[Replica]:
    """Starts gateway processes of one deployment (killed at the end of the test)."""
    with ExitStack() as stack:

        def start(*extra: str) -> GatewayProcess:
            proc = GatewayProcess(tmp_path / "unused.sqlite", extra_args=(*shared_backends, *extra)).start()
            stack.callback(proc.kill)
            return proc

        yield start
