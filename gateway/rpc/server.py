"""The grpc.aio server: the gateway's services, health checking and reflection."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
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
from gateway.rpc._convert import MAX_MESSAGE_BYTES
from gateway.rpc.crons import CronsService
from gateway.rpc.malformed import MalformedRequestInterceptor
from gateway.rpc.metrics import MetricsInterceptor
from gateway.rpc.servicers import AssistantsService, RunsService, ThreadsService
from gateway.rpc.sessions import SessionsService
from gateway.rpc.store import StoreService

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
    """`acceptors` grpc.aio servers on one port (SO_REUSEPORT), each with every service.

    A grpc.aio server takes a method's calls one at a time: the next is requested from the
    C core only once the last one has come back through the event loop, a few turns of it
    apiece. On a loop busy with hundreds of streams a turn takes milliseconds, so a burst of
    new calls waited seconds for their handlers (one server took 4.8 s to take 100 calls on a
    loop of 10 ms turns; four, 0.3 s to take 25 over 16 connections, against 1 s for one). Several servers on the port take them in parallel, each on the
    connections the kernel hands it: a client with several connections is served sooner; one
    with a single connection, as soon as before."""

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
        options = [(k, 1 if k == "grpc.so_reuseport" else v) for k, v in SERVER_OPTIONS] if shared else SERVER_OPTIONS
        # Outermost first: tracing's span and the metrics see every call, refused ones too.
        outer = (*tracing.grpc_server_interceptors(), MetricsInterceptor())
        self.health = health.aio.HealthServicer()
        self.servers = [
            self._server((*outer, *interceptors, MalformedRequestInterceptor()), options) for _ in range(acceptors)
        ]
        self.port = 0

    def _server(
        self, interceptors: tuple[grpc.aio.ServerInterceptor, ...], options: Sequence[tuple[str, Any]]
    ) -> grpc.aio.Server:
        gateway = self.gateway
        server = grpc.aio.server(interceptors=interceptors, options=options)
        assistants_pb2_grpc.add_AssistantsServiceServicer_to_server(AssistantsService(gateway), server)
        threads_pb2_grpc.add_ThreadsServiceServicer_to_server(ThreadsService(gateway), server)
        runs_pb2_grpc.add_RunsServiceServicer_to_server(RunsService(gateway), server)
        sessions_pb2_grpc.add_SessionsServiceServicer_to_server(SessionsService(gateway), server)
        store_pb2_grpc.add_StoreServiceServicer_to_server(StoreService(gateway), server)
        crons_pb2_grpc.add_CronsServiceServicer_to_server(CronsService(gateway), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        return server

    async def start(self, address: str) -> int:
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        if int(port):
            # As another process would find it: only --workers' processes share it.
            check_port("gRPC", host, int(port), "--grpc-port", reuse_port=self._reuse_port)
        first, *others = self.servers
        try:
            self.port = first.add_insecure_port(address)
            for server in others:
                if server.add_insecure_port(f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}") == 0:
                    self.port = 0
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            raise cannot_listen("gRPC", host, int(port), "--grpc-port")
        for server in self.servers:
            await server.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def enter_graceful_shutdown(self) -> None:
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace: float | None) -> None:
        await asyncio.gather(*(server.stop(grace) for server in self.servers))
