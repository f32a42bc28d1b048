"""`--grpc-acceptors`: several grpc.aio servers of one process on one port, so that new calls
arriving on different connections are taken in parallel rather than one after another."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from langgraph.gateway.v1 import runs_pb2, runs_pb2_grpc, threads_pb2, threads_pb2_grpc

from tests._server import GatewayProcess


def _listening(pid: int, port: int) -> int:
    """How many sockets of process `pid` listen on TCP `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(fields[9])
    held = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            held += 1
    return held


@pytest.fixture
def gateway_with_acceptors(tmp_path: Path) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(tmp_path / "gw.sqlite", extra_args=("--grpc-acceptors", "3")).start()
    yield proc
    proc.kill()


async def test_each_acceptor_listens_on_the_port_and_every_connection_is_served(
    gateway_with_acceptors: GatewayProcess,
) -> None:
    proc = gateway_with_acceptors
    assert proc.proc is not None
    assert _listening(proc.proc.pid, proc.grpc_port) == 3
    # Connections of their own, which the kernel deals to the servers: each one is served.
    channels = [
        grpc.aio.insecure_channel(proc.grpc_target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(12)
    ]
    try:

        async def one(channel: grpc.aio.Channel) -> str:
            thread = await threads_pb2_grpc.ThreadsServiceStub(channel).CreateThread(threads_pb2.CreateThreadRequest())
            request = runs_pb2.CreateRunRequest(thread_id=thread.thread_id, assistant_id="agent")
            request.input.struct_value.update({"topic": thread.thread_id})
            statuses = [
                event.end.status
                async for batch in runs_pb2_grpc.RunsServiceStub(channel).RunStreamBatch(request)
                for event in batch.events
                if event.WhichOneof("event") == "end"
            ]
            assert statuses == [runs_pb2.RUN_STATUS_SUCCESS]
            return str(thread.thread_id)

        threads = await asyncio.gather(*(one(channel) for channel in channels))
        assert len(set(threads)) == 12
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))


def test_another_gateway_cannot_take_the_shared_port(gateway_with_acceptors: GatewayProcess, tmp_path: Path) -> None:
    # The port is shared among this process's servers only: a second gateway is refused.
    second = GatewayProcess(tmp_path / "other.sqlite")
    second.extra_args = ("--grpc-port", str(gateway_with_acceptors.grpc_port))
    with pytest.raises(RuntimeError, match="in use by another program"):
        second.start(timeout=30)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError):
            probe.bind(("127.0.0.1", gateway_with_acceptors.grpc_port))
