"""The grpc.aio server: the gateway's services, health checking and reflection."""

from __future__ import annotations

import asyncio
import functools
from typing import cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import _async as reflection_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
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

from gateway import tracing
from gateway._utils import cannot_listen, check_port
from gateway.core.gateway import Gateway
from gateway.loops import IoLoop
from gateway.rpc._convert import MAX_MESSAGE_BYTES
from gateway.rpc.crons import CronsService
from gateway.rpc.io_loop import Bridge, Lookup, resolve
from gateway.rpc.malformed import MalformedRequestInterceptor
from gateway.rpc.metrics import MetricsInterceptor
from gateway.rpc.servicers import AssistantsService, RunsService, ThreadsService
from gateway.rpc.sessions import SessionsService
from gateway.rpc.store import StoreService
from gateway.rpc.web import WebRpc

SERVICE_NAMES = (
    assistants_pb2.DESCRIPTOR.services_by_name["AssistantsService"].full_name,
    threads_pb2.DESCRIPTOR.services_by_name["ThreadsService"].full_name,
    runs_pb2.DESCRIPTOR.services_by_name["RunsService"].full_name,
    sessions_pb2.DESCRIPTOR.services_by_name["SessionsService"].full_name,
    store_pb2.DESCRIPTOR.services_by_name["StoreService"].full_name,
    crons_pb2.DESCRIPTOR.services_by_name["CronsService"].full_name,
)

SERVER_OPTIONS = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # Long, quiet runs (an LLM thinking, a tool waiting) keep their connection alive.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 30_000),
    # Off unless several servers share the port (--workers, --grpc-acceptors): grpc turns it on
    # by default, and then a second server could bind a port that one is already serving.
    ("grpc.so_reuseport", 0),
)


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
    ) -> None:
        self.gateway = gateway
        # With several servers in this process, the port is shared even with one process.
        self._reuse_port = reuse_port
        shared = reuse_port or acceptors > 1
        self._options = (
            [(k, 1 if k == "grpc.so_reuseport" else v) for k, v in SERVER_OPTIONS] if shared else SERVER_OPTIONS
        )
        self._acceptors = acceptors
        # Outermost first: tracing's span and the metrics see every call, refused ones too.
        outer = (*tracing.grpc_server_interceptors(), MetricsInterceptor())
        self._interceptors = (*outer, *interceptors, MalformedRequestInterceptor())
        self.health = health.aio.HealthServicer()
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
        names = (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(reflection_aio.ReflectionServicer(names), server)

    def web(self) -> WebRpc:
        """The same services, interceptors and handlers, for the HTTP port (Connect, gRPC-Web)."""
        return WebRpc(functools.partial(resolve, self._lookup, self._interceptors), max_message_bytes=MAX_MESSAGE_BYTES)

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
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def _listen(self, address: str, host: str, bridge: Bridge) -> int:
        """On the I/O loop: its servers, listening; the port, or 0 when it is taken."""
        self.servers = [grpc.aio.server(handlers=(bridge,), options=self._options) for _ in range(self._acceptors)]
        first, *others = self.servers
        try:
            port = first.add_insecure_port(address)
            for server in others:
                if server.add_insecure_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}") == 0:
                    port = 0
        except RuntimeError:
            port = 0
        if port:
            for server in self.servers:
                await server.start()
        return port

    async def enter_graceful_shutdown(self) -> None:
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace: float | None) -> None:
        try:
            if self.servers:
                await self._io.run(self._stop(grace))
        finally:
            self._io.stop()

    async def _stop(self, grace: float | None) -> None:
        await asyncio.gather(*(server.stop(grace) for server in self.servers))
