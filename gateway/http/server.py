"""The HTTP port: uvicorn, started and stopped from inside the gateway's own event loop, for
HTTP/1.1; and HTTP/2 (cleartext with prior knowledge, or negotiated by ALPN under TLS) on the
same port, each such connection handed from uvicorn to hypercorn's HTTP/2 protocol.

uvicorn speaks HTTP/1.1 only. hypercorn speaks both, but its HTTP/1.1 is h11's, in Python,
which costs an event stream more CPU than httptools (docs/performance.md): so uvicorn keeps
every HTTP/1.1 connection, and looks at a connection's first bytes (or its ALPN protocol)
only to pass the HTTP/2 ones on, before it parses anything. Both drive the same ASGI app."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config as H2Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.shared.serde import dumps
from gateway.shared.settings import HEADER_TIMEOUT, MAX_HEADER_BYTES, BridgeSettings, Settings
from gateway.shared.tls import Tls
from gateway.shared.util import cannot_listen, within

# Requests still running this many seconds after a stop are cancelled.
SHUTDOWN_TIMEOUT = 3
# Idle keep-alive connections are closed after this many seconds, HTTP/1.1 and HTTP/2 alike.
KEEP_ALIVE_TIMEOUT = 5
# What an HTTP/2 client sends first on a connection (RFC 9113, 3.4): a request line that no
# HTTP/1.1 request has, since PRI is no HTTP/1.1 method.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class _Http2:
    """The HTTP/2 connections of one HttpServer, each served by hypercorn's HTTP/2 protocol (its
    TCPServer over the connection's transport) until the client or a stop closes it."""

    def __init__(self, max_header_bytes: int) -> None:
        config = H2Config()
        config.keep_alive_timeout = KEEP_ALIVE_TIMEOUT  # a connection without streams
        config.keep_alive_max_requests = 2**31  # HTTP/1.1 connections have no such limit either
        config.h2_max_header_list_size = max_header_bytes
        config.include_server_header = False
        config.errorlog = logging.getLogger("uvicorn.error")
        config.accesslog = None
        self.config = config
        self.context = WorkerContext(None)
        self.tasks: set[asyncio.Task[None]] = set()

    def serve(self, app: Any, state: dict[str, Any], transport: asyncio.Transport, data: bytes) -> None:
        """Serve the connection of `transport` over HTTP/2 from now on; `data` is what was read
        of it so far (the preface, or nothing yet when ALPN chose h2)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        if data:
            protocol.data_received(data)
        server = TCPServer(ASGIWrapper(app), loop, self.config, self.context, state, reader, writer)
        task = loop.create_task(server.run(), name="http2-connection")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def stop(self, grace: float) -> None:
        """Close idle connections now and the others when their last stream ends (GOAWAY);
        cancel what is still open after `grace` seconds."""
        await self.context.terminated.set()
        if not self.tasks:
            return
        _, pending = await asyncio.wait(set(self.tasks), timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


class _GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the two limits it lacks. uvicorn caps a request's
    headers only in its h11 protocol (`h11_max_incomplete_event_size`), and httptools buffers a
    header of any size; its only timeout, `timeout_keep_alive`, runs between two requests of a
    connection, not before the first nor while headers trickle in. Without these, a client
    that sends no credentials can fill the memory with one endless header, or hold connections
    open forever by saying nothing or a byte at a time.

    So: a request whose head (request line and headers) passes `max_header_bytes` is answered
    431 and its connection closed; a connection whose request head is not complete
    `header_timeout` seconds after it opened (or after the first byte of a later request) is
    closed, with a 408 if the request had begun. The head is measured by the bytes read while
    it is incomplete: a read that also holds the end of the previous request counts whole.

    And HTTP/2: a connection whose TLS handshake chose h2 (ALPN), or whose first bytes are
    HTTP/2's preface, is handed to `http2` before httptools reads a byte of it."""

    max_header_bytes = MAX_HEADER_BYTES
    header_timeout = HEADER_TIMEOUT
    http2: _Http2

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0
        self._in_head = True
        self._begun = False
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(self.header_timeout, self._head_too_slow)
        # The connection's first bytes while they may still be the HTTP/2 preface; None after.
        self._sniffed: bytes | None = b""
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            self._to_http2(b"")

    def _to_http2(self, data: bytes) -> None:
        self._stop_head_timer()
        self._sniffed = None
        self.connections.discard(self)  # uvicorn's stop waits for its own connections only
        self.http2.serve(self.app, self.app_state, self.transport, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._sniffed is not None:
            data, self._sniffed = self._sniffed + data, None
            if data[: len(H2_PREFACE)] == H2_PREFACE[: len(data)]:
                if len(data) >= len(H2_PREFACE):
                    return self._to_http2(data)
                self._sniffed = data  # a prefix of the preface: wait for the rest
                return
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse(431, f"Request headers too large (limit: {self.max_header_bytes} bytes)")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._begun, self._head_bytes = True, True, 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def on_headers_complete(self) -> None:
        self._in_head = self._begun = False
        self._stop_head_timer()
        super().on_headers_complete()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self._begun:
            self._refuse(408, f"Request headers not received within {self.header_timeout:g} s")
        else:
            self.transport.close()

    def _refuse(self, status: int, detail: str) -> None:
        self._stop_head_timer()
        body = dumps({"detail": detail})
        head = (
            f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int = MAX_HEADER_BYTES
    header_timeout: float = HEADER_TIMEOUT


def http_limits(settings: Settings | BridgeSettings) -> HttpLimits:
    return HttpLimits(settings.http_max_header_kb * 1024, settings.http_header_timeout)


def _protocol(limits: HttpLimits, http2: _Http2) -> type[_GuardedProtocol]:
    return type("GuardedHttpToolsProtocol", (_GuardedProtocol,), {**dataclasses.asdict(limits), "http2": http2})


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
        self,
        app: Any,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
        option: str = "--http-port",
        limits: HttpLimits = HttpLimits(),
        tls: Tls | None = None,
    ) -> None:
        self._http2 = _Http2(limits.max_header_bytes)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            # Runs the lifespan of a user's app (langgraph.json's http.app); the API has none.
            lifespan="auto",
            # The event streams carry their own heartbeats; keep idle keep-alive connections short.
            timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
            timeout_graceful_shutdown=SHUTDOWN_TIMEOUT,
            # httptools parses HTTP in C; h11 (uvicorn's fallback) costs a stream more CPU (docs/performance.md).
            http=_protocol(limits, self._http2),
            **(tls.uvicorn_options() if tls is not None else {}),
        )
        if tls is not None:
            config.load()  # makes config.ssl, which serve() then uses
            assert config.ssl is not None
            config.ssl.set_alpn_protocols(["h2", "http/1.1"])  # offered to TLS clients, h2 first
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
        http2 = asyncio.create_task(self._http2.stop(SHUTDOWN_TIMEOUT))
        try:
            await within(SHUTDOWN_TIMEOUT + 2, asyncio.shield(self._task))
        except TimeoutError:
            self._server.force_exit = True
            await self._task
        await http2
