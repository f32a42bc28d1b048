"""The gRPC server's connection policy: client keepalive pings, connection lifetimes, response
compression and message sizes, each through a real channel (and, for bytes on the wire, a
counting TCP proxy between it and the gateway)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from langgraph.gateway.v1 import runs_pb2, store_pb2, store_pb2_grpc, threads_pb2

from gateway.rpc.server import server_options
from gateway.shared.settings import Settings
from tests._server import ROOT, GatewayProcess
from tests.conftest import Stubs, make_stubs
from tests.rpc.test_run_stream import value

END_SUCCESS = runs_pb2.RUN_STATUS_SUCCESS
MiB = 1024 * 1024


@asynccontextmanager
async def gateway_channel(
    tmp_path: Path, *args: str, target: str | None = None, options: Sequence[tuple[str, Any]] = (), **kwargs: Any
) -> AsyncIterator[tuple[GatewayProcess, Stubs]]:
    proc = GatewayProcess(tmp_path / "db.sqlite", extra_args=args).start()
    try:
        async with grpc.aio.insecure_channel(target or proc.grpc_target, options=options, **kwargs) as channel:
            yield proc, make_stubs(channel)
    finally:
        proc.kill()


class StateLog:
    """Every connectivity state a channel goes through, from READY on."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.states: list[grpc.ChannelConnectivity] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> StateLog:
        await asyncio.wait_for(self.channel.channel_ready(), 30)
        self.states.append(self.channel.get_state())
        self._task = asyncio.create_task(self._follow())
        return self

    async def _follow(self) -> None:
        while True:
            await self.channel.wait_for_state_change(self.states[-1])
            self.states.append(self.channel.get_state())

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def quiet_run(stubs: Stubs, seconds: float) -> list[runs_pb2.RunEvent]:
    """A run that sends its first event at once, then nothing for `seconds`, then its end."""
    request = runs_pb2.CreateRunRequest(
        assistant_id="slow", input=value({"n": 1, "delay": seconds}), stream_mode=[runs_pb2.STREAM_MODE_CUSTOM]
    )
    return [event async for event in stubs.runs.RunStream(request, timeout=seconds + 60)]


async def calls_succeed(stubs: Stubs) -> None:
    thread = await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest(), timeout=30)
    got = await stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=thread.thread_id), timeout=30)
    assert got.thread_id == thread.thread_id


# The keepalive policy a tenth of its default: the gateway accepts a ping every 0.5 s
# (--grpc-min-ping-interval; 5 s by default) and the client pings every second (every 10 s, the
# keepalive a client behind a NAT or a proxy that drops quiet connections sets).
MIN_PING_INTERVAL = 0.5
KEEPALIVE = [
    ("grpc.keepalive_time_ms", 1_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


async def test_a_client_that_pings_as_often_as_permitted_keeps_its_quiet_stream_and_its_connection(
    tmp_path: Path,
) -> None:
    args = ("--grpc-min-ping-interval", str(MIN_PING_INTERVAL))
    async with gateway_channel(tmp_path, *args, options=KEEPALIVE) as (_, stubs), StateLog(stubs.channel) as log:
        # grpc's defaults strike a ping that comes sooner than 5 minutes after the last on a
        # quiet stream, and after two strikes answer GOAWAY "too_many_pings", failing the stream:
        # six pings, past the third strike.
        events = await quiet_run(stubs, 6.2)
        assert events[-1].end.status == END_SUCCESS
        # And without calls (grpc's default: a ping per 2 hours), four more, past the third strike.
        await asyncio.sleep(4.5)
        await calls_succeed(stubs)
        assert log.states == [grpc.ChannelConnectivity.READY], "the connection was closed"


async def test_a_client_that_pings_more_often_than_permitted_loses_its_quiet_stream(tmp_path: Path) -> None:
    # The same client against the default policy (a ping per 5 s): what the test above keeps
    # is the policy's doing, not a ping the server never counted.
    async with gateway_channel(tmp_path, options=KEEPALIVE) as (_, stubs):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await quiet_run(stubs, 30)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        await calls_succeed(stubs)


def test_the_default_keepalive_policy_permits_a_client_that_pings_every_10_s() -> None:
    options = dict(server_options(Settings(), reuse_port=False))
    # Half of 10 s, room for the client's timer jitter, with calls or without.
    assert options["grpc.http2.min_ping_interval_without_data_ms"] == 5_000
    assert options["grpc.keepalive_permit_without_calls"] == 1
    assert options["grpc.http2.max_ping_strikes"] == 2
    lowered = dict(server_options(Settings(grpc_min_ping_interval=0.5), reuse_port=False))
    assert lowered["grpc.http2.min_ping_interval_without_data_ms"] == 500


async def test_max_connection_age_spares_a_live_stream_and_the_client_reconnects(tmp_path: Path) -> None:
    async with (
        gateway_channel(tmp_path, "--grpc-max-connection-age", "1") as (_, stubs),
        StateLog(stubs.channel) as log,
    ):
        # Ticks for about 4 s: the connection is told to go away (GOAWAY) at about 1 s.
        request = runs_pb2.CreateRunRequest(
            assistant_id="slow", input=value({"n": 40, "delay": 0.1}), stream_mode=[runs_pb2.STREAM_MODE_CUSTOM]
        )
        events = [event async for event in stubs.runs.RunStream(request, timeout=60)]
        assert [json.loads(e.custom.json)["tick"] for e in events if e.HasField("custom")] == list(range(40))
        assert events[-1].end.status == END_SUCCESS
        assert log.states[1:], "no GOAWAY: the connection is as old as the stream"
        await calls_succeed(stubs)


async def test_max_connection_age_grace_cuts_a_stream_that_outlives_it(tmp_path: Path) -> None:
    args = ("--grpc-max-connection-age", "1", "--grpc-max-connection-age-grace", "1")
    async with gateway_channel(tmp_path, *args) as (_, stubs):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await quiet_run(stubs, 10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        await calls_succeed(stubs)


async def test_max_connection_idle_closes_a_connection_without_calls(tmp_path: Path) -> None:
    async with gateway_channel(tmp_path, "--grpc-max-connection-idle", "1") as (_, stubs):
        await calls_succeed(stubs)
        assert stubs.channel.get_state() == grpc.ChannelConnectivity.READY
        # The gateway's GOAWAY, about a second after the last call: the channel leaves READY.
        await asyncio.wait_for(stubs.channel.wait_for_state_change(grpc.ChannelConnectivity.READY), 30)
        await calls_succeed(stubs)


class Meter:
    """A TCP proxy in a thread of its own that counts the bytes each way."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.up = 0  # client to server
        self.down = 0  # server to client
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._pipes: set[asyncio.Task[None]] = set()

    @contextmanager
    def running(self) -> Iterator[Meter]:
        self._thread.start()
        start = asyncio.start_server(self._serve, "127.0.0.1", 0)
        server = asyncio.run_coroutine_threadsafe(start, self._loop).result(10)
        self.port = int(server.sockets[0].getsockname()[1])
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self._close(server), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    async def _close(self, server: asyncio.Server) -> None:
        server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        for pipe in (self._pipe(reader, up_writer, upstream=True), self._pipe(up_reader, writer, upstream=False)):
            task = asyncio.create_task(pipe)
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, upstream: bool) -> None:
        try:
            while data := await src.read(65536):
                if upstream:
                    self.up += len(data)
                else:
                    self.down += len(data)
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()


async def test_gzip_compresses_a_stream_of_large_events(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path / "db.sqlite", extra_args=("--grpc-compression", "gzip")).start()
    try:
        with Meter(proc.grpc_port).running() as meter:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{meter.port}") as channel:
                stubs = make_stubs(channel)
                # 200 events of 10 kB each: 2 MB of compressible JSON.
                request = runs_pb2.CreateRunRequest(
                    assistant_id="burst",
                    input=value({"n": 200, "pad": 10_000}),
                    stream_mode=[runs_pb2.STREAM_MODE_CUSTOM],
                )
                events = [event async for event in stubs.runs.RunStream(request, timeout=60)]
                custom = [e.custom.json for e in events if e.HasField("custom")]
                assert len(custom) == 200 and sum(map(len, custom)) > 2_000_000
                assert meter.down < 200_000, f"{meter.down} bytes for 2 MB of events: not compressed"

                # A compressed request is read too (the client's compression is its own choice).
                before = meter.up
                blob = struct_pb2.Struct()
                blob.update({"blob": "y" * 1_000_000})
                store = store_pb2_grpc.StoreServiceStub(channel)
                put = store_pb2.PutItemRequest(namespace=["gzip"], key="k", value=blob)
                await store.PutItem(put, compression=grpc.Compression.Gzip, timeout=30)
                assert meter.up - before < 100_000
                item = (await store.GetItem(store_pb2.GetItemRequest(namespace=["gzip"], key="k"), timeout=30)).item
                assert json.loads(item.value_json)["blob"] == "y" * 1_000_000
    finally:
        proc.kill()


async def test_max_message_size_bounds_requests_and_responses(tmp_path: Path) -> None:
    # The client allows more than the gateway both ways: what is refused is the gateway's limit.
    roomy = [("grpc.max_receive_message_length", 64 * MiB), ("grpc.max_send_message_length", 64 * MiB)]
    async with gateway_channel(tmp_path, "--grpc-max-message-mb", "1", options=roomy) as (_, stubs):
        big = struct_pb2.Struct()
        big.update({"blob": "y" * (2 * MiB)})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest(metadata=big), timeout=30)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        # Two items under the limit each; together, an answer over it.
        store = store_pb2_grpc.StoreServiceStub(stubs.channel)
        half = struct_pb2.Struct()
        half.update({"blob": "z" * (600 * 1024)})
        for key in ("a", "b"):
            await store.PutItem(store_pb2.PutItemRequest(namespace=["big"], key=key, value=half), timeout=30)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await store.SearchItems(store_pb2.SearchItemsRequest(namespace_prefix=["big"]), timeout=30)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (
            len((await store.SearchItems(store_pb2.SearchItemsRequest(namespace_prefix=["big"], limit=1))).items) == 1
        )


async def test_the_default_message_size_is_64_mib_both_ways(gateway: GatewayProcess) -> None:
    roomy = [("grpc.max_receive_message_length", 64 * MiB), ("grpc.max_send_message_length", 64 * MiB)]
    async with grpc.aio.insecure_channel(gateway.grpc_target, options=roomy) as channel:
        # Over grpc's own default of 4 MiB received, both ways (a store item: metadata has a
        # limit of its own, gateway/shared/limits.py).
        store = store_pb2_grpc.StoreServiceStub(channel)
        namespace = ["big", uuid.uuid4().hex]
        big = struct_pb2.Struct()
        big.update({"blob": "y" * (10 * MiB)})
        await store.PutItem(store_pb2.PutItemRequest(namespace=namespace, key="k", value=big), timeout=60)
        item = (await store.GetItem(store_pb2.GetItemRequest(namespace=namespace, key="k"), timeout=60)).item
        assert len(json.loads(item.value_json)["blob"]) == 10 * MiB
        big.update({"blob": "y" * (65 * MiB)})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await store.PutItem(store_pb2.PutItemRequest(namespace=namespace, key="k2", value=big), timeout=60)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_age_grace_defaults_to_the_run_timeout_else_to_no_limit() -> None:
    def options(**fields: Any) -> dict[str, int]:
        return dict(server_options(Settings(**fields), reuse_port=False))

    assert "grpc.max_connection_age_ms" not in options()
    assert "grpc.max_connection_age_grace_ms" not in options(grpc_max_connection_age=60)
    with_timeout = options(grpc_max_connection_age=60, run_timeout=300)
    assert (with_timeout["grpc.max_connection_age_ms"], with_timeout["grpc.max_connection_age_grace_ms"]) == (
        60_000,
        300_000,
    )
    explicit = options(grpc_max_connection_age=60, grpc_max_connection_age_grace=5, run_timeout=300)
    assert explicit["grpc.max_connection_age_grace_ms"] == 5_000
    assert options(grpc_max_connection_idle=0.5)["grpc.max_connection_idle_ms"] == 500


@pytest.mark.parametrize(
    ("flag", "given"),
    [
        ("--grpc-max-connection-age", "0"),
        ("--grpc-max-connection-age-grace", "-1"),
        ("--grpc-max-connection-idle", "inf"),
        ("--grpc-min-ping-interval", "0"),
        ("--grpc-max-message-mb", "0"),
        ("--grpc-compression", "brotli"),
    ],
)
def test_a_bad_connection_flag_is_refused_by_name(tmp_path: Path, flag: str, given: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--db", str(tmp_path / "db.sqlite"), flag, given],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"argument {flag}" in result.stderr and given in result.stderr
    assert "Traceback" not in result.stderr
