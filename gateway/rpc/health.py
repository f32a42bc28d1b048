"""`grpc.health.v1.Health`: Check, and Watch, which gRPC's client-side health checking (gRFC A17)
calls on every connection: SERVING at once, NOT_SERVING when the process starts to drain, and
the stream ends when the server stops (grpc_health's own aio Watch waits until it is cancelled),
so that a client turns to another replica without waiting for the socket or a grace period."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc
from grpc_health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from gateway.rpc.status import abort

SERVING = HealthCheckResponse.SERVING
NOT_SERVING = HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = HealthCheckResponse.SERVICE_UNKNOWN


class HealthServicer(health_pb2_grpc.HealthServicer):
    def __init__(self) -> None:
        self._status: dict[str, HealthCheckResponse.ServingStatus] = {"": SERVING}
        # Set, and replaced by a fresh one, on every change: a watcher that took it before it
        # read the status misses no change.
        self._changed = asyncio.Event()
        self._draining = False
        self._closed = False
        # Watch calls still in their handler; `ended` is set whenever there are none.
        self._watching = 0
        self._ended = asyncio.Event()
        self._ended.set()

    async def Check(self, request: HealthCheckRequest, context: Any) -> HealthCheckResponse:
        status = self._status.get(request.service)
        if status is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}", "SERVICE_NOT_FOUND")
        return HealthCheckResponse(status=status)

    async def Watch(self, request: HealthCheckRequest, context: Any) -> AsyncIterator[HealthCheckResponse]:
        # As the protocol says: an unknown service is watched as SERVICE_UNKNOWN, not refused.
        last: HealthCheckResponse.ServingStatus | None = None
        self._watching += 1
        self._ended.clear()
        try:
            while True:
                changed = self._changed
                status = self._status.get(request.service, SERVICE_UNKNOWN)
                if status != last:
                    yield HealthCheckResponse(status=status)
                    last = status
                    # Looked at again: the server may have started to drain, and to close,
                    # while that message was on its way (the watch must still say NOT_SERVING).
                    continue
                if self._closed:
                    return
                await changed.wait()
        finally:
            self._watching -= 1
            if not self._watching:
                self._ended.set()

    def set(self, service: str, status: HealthCheckResponse.ServingStatus) -> None:
        if self._draining:
            return
        self._status[service] = status
        self._notify()

    def enter_graceful_shutdown(self) -> None:
        """Every service NOT_SERVING from now on."""
        if self._draining:
            return
        self._draining = True
        self._status = dict.fromkeys(self._status, NOT_SERVING)
        self._notify()

    def close(self) -> None:
        """Ends every Watch stream (OK), before the server stops."""
        self._closed = True
        self._notify()

    async def ended(self) -> None:
        """Returns once no Watch call is in its handler: each has sent its last status."""
        await self._ended.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
