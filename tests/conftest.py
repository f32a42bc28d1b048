from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from langgraph.gateway.v1 import assistants_pb2_grpc, runs_pb2_grpc, threads_pb2_grpc

from tests._server import GatewayProcess


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One gateway process shared by the tests that only talk to it."""
    proc = GatewayProcess(tmp_path_factory.mktemp("gateway") / "gateway.sqlite").start()
    yield proc
    proc.kill()


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
