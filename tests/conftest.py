from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from langgraph.gateway.v1 import assistants_pb2_grpc, runs_pb2_grpc, threads_pb2_grpc

from tests import _xdist
from tests._backends import REDIS, postgres_database, redis_prefix
from tests._server import GatewayProcess
from tests._tiers import mark
from tests.http._bridge import BridgeProcess

BACKENDS = ["sqlite", "postgres"]


@contextmanager
def backend_args(backend: str) -> Iterator[tuple[str, ...]]:
    """The command-line arguments of a gateway on `backend`: sqlite (the default), or Postgres and
    Redis, on a database and key prefix of its own."""
    if backend == "sqlite":
        yield ()
        return
    with postgres_database(schema=True) as url, redis_prefix() as prefix:
        yield ("--database-url", url, "--redis-url", REDIS, "--redis-prefix", prefix)


def _shared_gateway(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with backend_args(backend) as args:
        proc = GatewayProcess(tmp_path_factory.mktemp("gateway") / "gateway.sqlite", extra_args=args).start()
        yield proc
        proc.kill()


@pytest.fixture(scope="session")
def sqlite_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The shared gateway on sqlite, for the session (of each pytest-xdist worker)."""
    yield from _shared_gateway("sqlite", tmp_path_factory)


@pytest.fixture(scope="session")
def postgres_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The shared gateway on Postgres and Redis, for the session (of each pytest-xdist worker)."""
    yield from _shared_gateway("postgres", tmp_path_factory)


@pytest.fixture(scope="session", params=BACKENDS)
def gateway(request: pytest.FixtureRequest) -> GatewayProcess:
    """One gateway process shared by the tests that only talk to it, on each backend: every
    test that uses it runs against both. Both processes live for the whole session, so that
    tests taken in any order (as pytest-xdist deals them) never restart one."""
    name = {"sqlite": "sqlite_gateway", "postgres": "postgres_gateway"}[request.param]
    return request.getfixturevalue(name)


@pytest.fixture(scope="session")
def shared_bridges() -> Iterator[dict[str, BridgeProcess]]:
    """The bridges started over the shared gateways, by gRPC target, killed at the session's end."""
    bridges: dict[str, BridgeProcess] = {}
    yield bridges
    for proc in bridges.values():
        proc.kill()


@pytest.fixture
def bridge(gateway: GatewayProcess, shared_bridges: dict[str, BridgeProcess]) -> BridgeProcess:
    """The bridge (HTTP forwarded to a gRPC edge) over `gateway`: one per gateway for the session,
    like the gateway itself (a bridge keeps no state of its own)."""
    if gateway.grpc_target not in shared_bridges:
        shared_bridges[gateway.grpc_target] = BridgeProcess(gateway.grpc_target).start()
    return shared_bridges[gateway.grpc_target]


@dataclass
class Stubs:
    channel: grpc.aio.Channel
    assistants: assistants_pb2_grpc.AssistantsServiceStub
    threads: threads_pb2_grpc.ThreadsServiceStub
    runs: runs_pb2_grpc.RunsServiceStub


def make_stubs(channel: grpc.aio.Channel) -> Stubs:
    return Stubs(
        channel,
        assistants_pb2_grpc.AssistantsServiceStub(channel),
        threads_pb2_grpc.ThreadsServiceStub(channel),
        runs_pb2_grpc.RunsServiceStub(channel),
    )


@pytest_asyncio.fixture
async def stubs(gateway: GatewayProcess) -> AsyncIterator[Stubs]:
    async with grpc.aio.insecure_channel(gateway.grpc_target) as channel:
        yield make_stubs(channel)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gateway.sqlite"


@asynccontextmanager
async def own_gateway(db: Path, *extra_args: str) -> AsyncIterator[Stubs]:
    """A gateway process of the test's own (for flags the shared one lacks), with stubs."""
    proc = GatewayProcess(db, extra_args=extra_args).start()
    try:
        async with grpc.aio.insecure_channel(proc.grpc_target) as channel:
            yield make_stubs(channel)
    finally:
        proc.kill()


def pytest_configure(config: pytest.Config) -> None:
    _xdist.configure(config)


@pytest.hookimpl(tryfirst=True)  # before -m selects by them
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark(items)
    _xdist.publish(config, items)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: --dist loadgroup by tests/_xdist.py
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist") == "loadgroup":
        return _xdist.GroupScheduling(config, log)
    return None
