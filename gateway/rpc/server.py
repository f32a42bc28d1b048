"""The grpc.aio server: the gateway's services, health checking and reflection."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from langgraph.gateway.v1 import (
    assistants_pb2,
    assistants_pb2_grpc,
    crons_pb2,
    crons_pb2_grpc,
    runs_pb2,
    runs_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
    store_pb2,
    store_pb2_grpc,
    threads_pb2,
    threads_pb2_grpc,
)

from gateway.core.gateway import Gateway
from gateway.process import tracing
from gateway.process.loops import IoLoop
from gateway.rpc import reflection
from gateway.rpc.crons import CronsService
from gateway.rpc.health import SERVING, HealthServicer
from gateway.rpc.io_loop import Bridge, Lookup, resolve
from gateway.rpc.malformed import MalformedRequestInterceptor
from gateway.rpc.metrics import MetricsInterceptor
from gateway.rpc.servicers import AssistantsService, RunsService, ThreadsService
from gateway.rpc.sessions import SessionsService
from gateway.rpc.store import StoreService
from gateway.rpc.web import WebRpc
from gateway.shared.settings import Settings
from gateway.shared.tls import Tls
from gateway.shared.util import cannot_listen, check_port, within

SERVICE_NAMES = (
    assistants_pb2.DESCRIPTOR.services_by_name["AssistantsService"].full_name,
    threads_pb2.DESCRIPTOR.services_by_name["ThreadsService"].full_name,
    runs_pb2.DESCRIPTOR.services_by_name["RunsService"].full_name,
    sessions_pb2.DESCRIPTOR.services_by_name["SessionsService"].full_name,
    store_pb2.DESCRIPTOR.services_by_name["StoreService"].full_name,
    crons_pb2.DESCRIPTOR.services_by_name["CronsService"].full_name,
)

HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name

COMPRESSION = {
    "none": grpc.Compression.NoCompression,
    "gzip": grpc.Compression.Gzip,
    "deflate": grpc.Compression.Deflate,
}


def max_message_bytes(settings: Settings) -> int:
    return settings.grpc_max_message_mb * 1024 * 1024


def server_options(settings: Settings, *, reuse_port: bool) -> list[tuple[str, int]]:
    """The servers' channel arguments: message sizes, keepalive, connection lifetimes."""
    message_bytes = max_message_bytes(settings)
    options = [
        ("grpc.max_send_message_length", message_bytes),
        ("grpc.max_receive_message_length", message_bytes),
        # Long, quiet runs (an LLM thinking, a tool waiting) keep their connection alive.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        # Clients may ping every 10 s or more (--grpc-min-ping-interval, 5 s by default), with
        # calls or without: behind a proxy or a NAT that drops quiet connections, a client's
        # keepalive is what keeps its stream. grpc's defaults (5 minutes; 2 hours without calls)
        # answer such a client with GOAWAY "too_many_pings" after a few pings. Half of 10 s
        # leaves room for timer jitter. (This is C-core's
        # GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, a server setting.)
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", _ms(settings.grpc_min_ping_interval)),
        ("grpc.http2.max_ping_strikes", 2),
        # Off unless several servers share the port (--workers, --grpc-acceptors): grpc turns it on
        # by default, and then a second server could bind a port that one is already serving.
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ]
    if settings.grpc_max_connection_age is not None:
        options.append(("grpc.max_connection_age_ms", _ms(settings.grpc_max_connection_age)))
        # grpc's default grace is unlimited: a connection told to go away keeps its live streams.
        grace = settings.grpc_max_connection_age_grace
        if grace is None:
            grace = settings.run_timeout
        if grace is not None:
            options.append(("grpc.max_connection_age_grace_ms", _ms(grace)))
    if settings.grpc_max_connection_idle is not None:
        options.append(("grpc.max_connection_idle_ms", _ms(settings.grpc_max_connection_idle)))
    return options


def _ms(seconds: float) -> int:
    # A channel argument is a C int: past it (24 days), as good as no limit.
    return min(max(1, round(seconds * 1000)), 2**31 - 1)


class GrpcServer:
    """`acceptors` grpc.aio servers on one port (SO_REUSEPORT), on an event loop of their own
    (gateway.rpc.io_loop), each serving every service of the core's loop.

    A grpc.aio server takes its calls one at a time, each a few turns of its loop apiece: even
    on a loop of their own, several servers on the port take a burst of new calls sooner, each
    on the connections the kernel hands it."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        interceptors: tuple[grpc.aio.ServerInterceptor, ...] = (),
        reuse_port: bool = False,
        acceptors: int = 1,
        tls: Tls | None = None,
    ) -> None:
        self.gateway = gateway
        self._credentials = (
            None
            if tls is None
            else grpc.ssl_server_credentials(
                [(tls.key, tls.cert)], root_certificates=tls.client_ca, require_client_auth=tls.client_ca is not None
            )
        )
        settings = gateway.settings
        # With several servers in this process, the port is shared even with one process.
        self._reuse_port = reuse_port
        self._options = server_options(settings, reuse_port=reuse_port or acceptors > 1)
        self._compression = COMPRESSION[settings.grpc_compression]
        self._acceptors = acceptors
        # Outermost first: tracing's span and the metrics see every call, refused ones too.
        outer = (*tracing.grpc_server_interceptors(), MetricsInterceptor())
        self._interceptors = (*outer, *interceptors, MalformedRequestInterceptor())
        self.health = HealthServicer()
        self._lookup = Lookup()
        self._register(self._lookup)
        self._io = IoLoop("grpc-io")
        self.servers: list[grpc.aio.Server] = []
        self.port = 0

    def _register(self, lookup: Lookup) -> None:
        gateway, server = self.gateway, cast(grpc.aio.Server, lookup)
        assistants_pb2_grpc.add_AssistantsServiceServicer_to_server(AssistantsService(gateway), server)
        threads_pb2_grpc.add_ThreadsServiceServicer_to_server(ThreadsService(gateway), server)
        runs_pb2_grpc.add_RunsServiceServicer_to_server(RunsService(gateway), server)
        sessions_pb2_grpc.add_SessionsServiceServicer_to_server(SessionsService(gateway), server)
        store_pb2_grpc.add_StoreServiceServicer_to_server(StoreService(gateway), server)
        crons_pb2_grpc.add_CronsServiceServicer_to_server(CronsService(gateway), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        lookup.add_generic_rpc_handlers(reflection.handlers((*SERVICE_NAMES, HEALTH_SERVICE_NAME)))

    def web(self) -> WebRpc:
        """The same services, interceptors and handlers, for the HTTP port (Connect, gRPC-Web)."""
        limit = max_message_bytes(self.gateway.settings)
        return WebRpc(functools.partial(resolve, self._lookup, self._interceptors), max_message_bytes=limit)

    async def start(self, address: str) -> int:
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        if int(port):
            # As another process would find it: only --workers' processes share it.
            check_port("gRPC", host, int(port), "--grpc-port", reuse_port=self._reuse_port)
        self._io.start()
        bridge = Bridge(self._lookup, self._interceptors, asyncio.get_running_loop(), self._io.loop)
        self.port = await self._io.run(self._listen(address, host, bridge))
        if self.port == 0:
            raise cannot_listen("gRPC", host, int(port), "--grpc-port")
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, SERVING)
        return self.port

    async def _listen(self, address: str, host: str, bridge: Bridge) -> int:
        """On the I/O loop: its servers, listening; the port, or 0 when it is taken."""
        self.servers = [
            grpc.aio.server(handlers=(bridge,), options=self._options, compression=self._compression)
            for _ in range(self._acceptors)
        ]
        first, *others = self.servers
        try:
            port = self._add_port(first, address)
            for server in others:
                if self._add_port(server, f"[{host}]:{port}" if ":" in host else f"{host}:{port}") == 0:
                    port = 0
        except RuntimeError:
            port = 0
        if port:
            for server in self.servers:
                await server.start()
        return port

    def _add_port(self, server: grpc.aio.Server, address: str) -> int:
        if self._credentials is None:
            return server.add_insecure_port(address)
        return server.add_secure_port(address, self._credentials)

    async def enter_graceful_shutdown(self) -> None:
        self.health.enter_graceful_shutdown()

    async def stop(self, grace: float | None) -> None:
        # Health watches would last until grace runs out: they end first, and cleanly, each
        # with its last status sent before the server's grace starts (on a busy machine their
        # handlers may need longer than the grace to get there).
        self.health.close()
        with contextlib.suppress(TimeoutError):
            await within(5.0, self.health.ended())
        try:
            if self.servers:
                await self._io.run(self._stop(grace))
        finally:
            self._io.stop()

    async def _stop(self, grace: float | None) -> None:
        await asyncio.gather(*(server.stop(grace) for server in self.servers))
