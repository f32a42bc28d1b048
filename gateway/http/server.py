"""uvicorn, started and stopped from inside the gateway's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from gateway._utils import cannot_listen

# Requests still running this many seconds after a stop are cancelled.
SHUTDOWN_TIMEOUT = 3


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The gateway owns SIGTERM and SIGINT and stops this server itself, after draining runs.
        yield


def _socket(host: str, port: int, *, reuse_port: bool, option: str) -> socket.socket:
    """The listening socket, bound here rather than by uvicorn, whose failure to bind is a log
    line and a SystemExit inside its task: a port in use is one clear start-up error. With
    `reuse_port`, other processes may bind it too (SO_REUSEPORT, --workers): the kernel
    spreads the connections over them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise cannot_listen("HTTP", host, port, option, exc) from None
    return sock


class HttpServer:
    def __init__(
        self, app: Any, host: str, port: int, *, reuse_port: bool = False, option: str = "--http-port"
    ) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            # Runs the lifespan of a user's app (langgraph.json's http.app); the API has none.
            lifespan="auto",
            # The event streams carry their own heartbeats; keep idle keep-alive connections short.
            timeout_keep_alive=5,
            timeout_graceful_shutdown=SHUTDOWN_TIMEOUT,
            # httptools parses HTTP in C; h11 (uvicorn's fallback) costs ~7% of the CPU of a stream.
            http="httptools",
        )
        self._app = app
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None
        sock = _socket(host, port, reuse_port=reuse_port, option=option)
        sock.listen(2048)
        self._sockets = [sock]

    async def start(self) -> int:
        self._task = asyncio.create_task(self._server.serve(sockets=self._sockets), name="http-server")
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise OSError("the HTTP server stopped during startup")
            await asyncio.sleep(0.01)
        sockets = [s for server in self._server.servers for s in server.sockets]
        return int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._task is None:
            return
        closing = getattr(getattr(self._app, "state", None), "closing", None)
        if closing is not None:
            closing.set()  # ends open event streams cleanly rather than at the timeout
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), SHUTDOWN_TIMEOUT + 2)
        except TimeoutError:
            self._server.force_exit = True
            await self._task
