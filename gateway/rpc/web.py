"""The gRPC API on the HTTP port: the Connect protocol (JSON and binary) and gRPC-Web (binary,
and base64 text), over HTTP/1.1 and HTTP/2, for browsers and for plain HTTP clients such as curl.

Each call goes through the interceptors of the gRPC port (auth, the services turned off,
metrics, tracing) to the same servicer, with a ServicerContext made from the request's headers:
the same codes, messages, error details and metrics as on the gRPC port. Unary and
server-streaming RPCs are served; a bidirectional or client-streaming RPC (the thread session)
is UNIMPLEMENTED here, since neither protocol carries it over HTTP/1.1, nor from a browser.

Written here rather than taken from connectrpc or sonora: both serve services written against
their own generated stubs, context and interceptors, so every RPC, its auth and its error
mapping would exist twice; this module only frames the servicers' messages."""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import json
import logging
import struct
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2
from starlette.types import Receive, Scope, Send

from gateway.process.metrics import internal_error
from gateway.rpc.io_loop import CallStatus, Several
from gateway.rpc.status import details as status_details
from gateway.shared.util import digits

logger = logging.getLogger("gateway.rpc.web")

Resolve = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]

# Envelope flags: Connect's end of stream, gRPC-Web's trailers, and compression in both.
_COMPRESSED = 0x01
_CONNECT_END = 0x02
_GRPC_WEB_TRAILERS = 0x80
_DETAILS_KEY = "grpc-status-details-bin"

# Connect's names for the codes and the HTTP status of a unary error (connectrpc.com/docs/protocol).
_CONNECT: dict[grpc.StatusCode, tuple[str, int]] = {
    grpc.StatusCode.CANCELLED: ("canceled", 499),
    grpc.StatusCode.UNKNOWN: ("unknown", 500),
    grpc.StatusCode.INVALID_ARGUMENT: ("invalid_argument", 400),
    grpc.StatusCode.DEADLINE_EXCEEDED: ("deadline_exceeded", 504),
    grpc.StatusCode.NOT_FOUND: ("not_found", 404),
    grpc.StatusCode.ALREADY_EXISTS: ("already_exists", 409),
    grpc.StatusCode.PERMISSION_DENIED: ("permission_denied", 403),
    grpc.StatusCode.RESOURCE_EXHAUSTED: ("resource_exhausted", 429),
    grpc.StatusCode.FAILED_PRECONDITION: ("failed_precondition", 400),
    grpc.StatusCode.ABORTED: ("aborted", 409),
    grpc.StatusCode.OUT_OF_RANGE: ("out_of_range", 400),
    grpc.StatusCode.UNIMPLEMENTED: ("unimplemented", 501),
    grpc.StatusCode.INTERNAL: ("internal", 500),
    grpc.StatusCode.UNAVAILABLE: ("unavailable", 503),
    grpc.StatusCode.DATA_LOSS: ("data_loss", 500),
    grpc.StatusCode.UNAUTHENTICATED: ("unauthenticated", 401),
}

# Request headers that describe the protocol, not the call: not passed on as metadata.
_PROTOCOL_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "connect-accept-encoding",
        "connect-content-encoding",
        "connect-protocol-version",
        "connect-timeout-ms",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "grpc-accept-encoding",
        "grpc-encoding",
        "grpc-timeout",
        "host",
        "te",
        "transfer-encoding",
        "x-grpc-web",
    }
)

# The headers a browser must be allowed to send and to read (CORS) for these protocols.
ALLOWED_HEADERS = (
    "content-type",
    "connect-protocol-version",
    "connect-timeout-ms",
    "connect-accept-encoding",
    "connect-content-encoding",
    "grpc-timeout",
    "x-grpc-web",
    "x-user-agent",
)
EXPOSED_HEADERS = ("grpc-status", "grpc-message", _DETAILS_KEY, "connect-content-encoding", "content-encoding")

_GRPC_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


class RpcError(Exception):
    """A status to answer with, before or instead of the servicer."""

    def __init__(self, code: grpc.StatusCode, message: str, trailers: Sequence[tuple[str, Any]] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.trailers = tuple(trailers)
        if code != grpc.StatusCode.OK and all(key != _DETAILS_KEY for key, _ in self.trailers):
            # A request refused before any servicer (a corrupt body, a bad header) says why too.
            self.trailers += status_details(code, message, code.name)


class _Gone(Exception):
    """The client went away before its request was read."""


class _Details(NamedTuple):  # what grpc.aio hands its interceptors
    method: str
    invocation_metadata: tuple[tuple[str, str | bytes], ...]


@dataclass(frozen=True)
class _Protocol:
    name: str  # "connect" (unary), "connect-stream", "grpc-web"
    json: bool
    text: bool = False


def _protocol(content_type: str) -> _Protocol | None:
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("application/json", "application/proto"):
        return _Protocol("connect", media.endswith("json"))
    if media in ("application/connect+json", "application/connect+proto"):
        return _Protocol("connect-stream", media.endswith("json"))
    if media.startswith("application/grpc-web"):
        rest = media.removeprefix("application/grpc-web")
        text = rest.startswith("-text")
        codec = rest.removeprefix("-text")
        if codec in ("", "+proto", "+json"):
            return _Protocol("grpc-web", codec == "+json", text)
    return None


def _method(path: str) -> MethodDescriptor | None:
    service, _, name = path.lstrip("/").partition("/")
    try:
        return descriptor_pool.Default().FindServiceByName(service).methods_by_name.get(name)
    except KeyError:
        return None


class WebContext(CallStatus):
    """What a servicer sees of a call that came over HTTP: grpc.aio.ServicerContext's surface."""

    def __init__(self, metadata: tuple[tuple[str, str | bytes], ...], peer: str, deadline: float | None) -> None:
        super().__init__()
        self._metadata = metadata
        self._peer = peer
        self._deadline = deadline
        self.initial: tuple[tuple[str, Any], ...] = ()
        self._done = False
        self._callbacks: list[Callable[[Any], None]] = []

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    def peer_identities(self) -> Iterable[bytes] | None:
        return None

    def peer_identity_key(self) -> str | None:
        return None

    def auth_context(self) -> dict[str, Iterable[bytes]]:
        return {}

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return self._done

    def is_active(self) -> bool:
        return not self._done

    async def send_initial_metadata(self, initial_metadata: Any) -> None:
        self.initial = tuple(initial_metadata)

    def set_compression(self, compression: Any) -> None:
        pass  # responses here follow the protocol's own negotiation

    def disable_next_message_compression(self) -> None:
        pass

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._callbacks.append(callback)

    def finish(self) -> None:
        self._done = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                logger.exception("a done callback of %s failed", self._peer)

    def status(self) -> RpcError | None:
        """The status the handler ended with, when it is not OK."""
        if self._code is None or self._code == grpc.StatusCode.OK:
            return None
        return RpcError(self._code, self._details or "", self._trailers)


def _metadata(headers: Iterable[tuple[bytes, bytes]]) -> tuple[tuple[str, str | bytes], ...]:
    out: list[tuple[str, str | bytes]] = []
    for raw_key, raw_value in headers:
        key = raw_key.decode("latin-1").lower()
        if key in _PROTOCOL_HEADERS or key.startswith(":"):
            continue
        value = raw_value.decode("latin-1")
        if key.endswith("-bin"):
            try:
                out.append((key, base64.b64decode(value + "=" * (-len(value) % 4))))
            except binascii.Error:
                raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"header {key}: not base64") from None
        else:
            out.append((key, value))
    return tuple(out)


def _deadline(headers: dict[str, str]) -> float | None:
    if (ms := headers.get("connect-timeout-ms")) is not None:
        if not digits(ms) or len(ms) > 10:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "connect-timeout-ms: not a number of milliseconds")
        return time.monotonic() + int(ms) / 1000
    if (timeout := headers.get("grpc-timeout")) is not None:
        amount, unit = timeout[:-1], timeout[-1:]
        if not digits(amount) or len(amount) > 8 or unit not in _GRPC_TIMEOUT_UNITS:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "grpc-timeout: not a gRPC timeout")
        return time.monotonic() + int(amount) * _GRPC_TIMEOUT_UNITS[unit]
    return None


def _decompress(data: bytes, encoding: str | None) -> bytes:
    if encoding in (None, "", "identity"):
        return data
    if encoding == "gzip":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"the request's gzip body is corrupt: {exc}") from None
    raise RpcError(grpc.StatusCode.UNIMPLEMENTED, f"unknown compression {encoding!r}: use gzip or identity")


def _envelopes(data: bytes, encoding: str | None) -> list[bytes]:
    """The messages of an enveloped body (1 flags byte, a 4-byte big-endian length, the bytes)."""
    messages, at = [], 0
    while at < len(data):
        if len(data) - at < 5:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "the request body ends inside an envelope's header")
        flags, size = data[at], struct.unpack_from(">I", data, at + 1)[0]
        chunk = data[at + 5 : at + 5 + size]
        if len(chunk) != size:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "the request body ends inside a message")
        if flags & ~_COMPRESSED:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"unexpected envelope flags {flags:#x} in a request")
        messages.append(_decompress(chunk, encoding) if flags & _COMPRESSED else chunk)
        at += 5 + size
    return messages


def envelope(flags: int, data: bytes) -> bytes:
    return struct.pack(">BI", flags, len(data)) + data


class _Codec:
    def __init__(self, method: MethodDescriptor, as_json: bool) -> None:
        self.json = as_json
        self.request_class = message_factory.GetMessageClass(method.input_type)

    def decode(self, data: bytes, handler: grpc.RpcMethodHandler) -> Any:
        try:
            if not self.json:
                parse = handler.request_deserializer or self.request_class.FromString
                return parse(data)
            return json_format.Parse(data or b"{}", self.request_class())
        except (json_format.ParseError, UnicodeDecodeError, RecursionError) as exc:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid JSON message: {exc}"
            ) from None
        except DecodeError as exc:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"the request cannot be parsed: {exc}") from None

    def encode(self, message: Message) -> bytes:
        if self.json:
            return json_format.MessageToJson(message, indent=None).encode()
        return message.SerializeToString()


def _connect_error(error: RpcError) -> dict[str, Any]:
    name, _ = _CONNECT.get(error.code, ("unknown", 500))
    body: dict[str, Any] = {"code": name}
    if error.message:
        body["message"] = error.message
    details = []
    for key, value in error.trailers:
        if key == _DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for any_ in status.details:
                details.append(
                    {
                        "type": any_.TypeName(),
                        "value": base64.b64encode(any_.value).decode().rstrip("="),
                    }
                )
    if details:
        body["details"] = details
    return body


def _metadata_json(pairs: Iterable[tuple[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        text = base64.b64encode(value).decode() if isinstance(value, bytes) else str(value)
        out.setdefault(key, []).append(text)
    return out


def _header_pairs(pairs: Iterable[tuple[str, Any]], prefix: str = "") -> list[tuple[bytes, bytes]]:
    out = []
    for key, value in pairs:
        text = base64.b64encode(value).decode() if isinstance(value, bytes) else str(value)
        out.append(((prefix + key).encode("latin-1"), text.encode("latin-1", "replace")))
    return out


def _grpc_web_trailers(error: RpcError | None, trailers: Iterable[tuple[str, Any]]) -> bytes:
    code = grpc.StatusCode.OK if error is None else error.code
    lines = [f"grpc-status: {code.value[0]}"]
    if error is not None and error.message:
        lines.append(f"grpc-message: {urllib.parse.quote(error.message, safe=' !#$&()*+,-./:;<=>?@[]^_`{|}~')}")
    for key, value in (*trailers, *(error.trailers if error is not None else ())):
        text = base64.b64encode(value).decode().rstrip("=") if isinstance(value, bytes) else str(value)
        lines.append(f"{key}: {text}")
    return ("\r\n".join(lines) + "\r\n").encode("latin-1", "replace")


class WebRpc:
    """An ASGI app for POST /<package.Service>/<Method> in the Connect and gRPC-Web protocols."""

    allow_headers: Sequence[str] = ALLOWED_HEADERS
    expose_headers: Sequence[str] = EXPOSED_HEADERS

    def __init__(self, resolve: Resolve, *, max_message_bytes: int) -> None:
        self._resolve = resolve
        self._max = max_message_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        protocol = _protocol(headers.get("content-type", ""))
        if scope["method"] != "POST" or protocol is None:
            await _plain(
                send, 415 if scope["method"] == "POST" else 405, "use POST with a Connect or gRPC-Web content type"
            )
            return
        started = False

        async def start(status: int, extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
            nonlocal started
            started = True
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if protocol.name == "connect" and status != 200:
                media = "application/json"
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", media.encode()), *extra],
                }
            )

        async def body(data: bytes, more: bool = True) -> None:
            if protocol.text and data:
                data = base64.b64encode(data)
            await send({"type": "http.response.body", "body": data, "more_body": more})

        context: WebContext | None = None
        try:
            method = _method(scope["path"])
            if method is None:
                raise RpcError(grpc.StatusCode.UNIMPLEMENTED, f"unknown method {scope['path']}")
            if method.client_streaming:
                raise RpcError(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"{method.full_name} streams requests: serve it over gRPC (HTTP/2), not {protocol.name}",
                )
            if protocol.name != "grpc-web" and method.server_streaming != (protocol.name == "connect-stream"):
                wanted = (
                    "application/connect+json or +proto" if method.server_streaming else "application/json or proto"
                )
                raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"{method.full_name}: use content-type {wanted}")
            client = scope.get("client") or ("", 0)
            context = WebContext(_metadata(scope["headers"]), f"ipv4:{client[0]}:{client[1]}", _deadline(headers))
            data = await self._read(receive, protocol, headers)
            codec = _Codec(method, protocol.json)
            path = f"/{method.containing_service.full_name}/{method.name}"
            details = _Details(path, context.invocation_metadata())
            handler = await self._resolve(details)
            if handler is None:
                raise RpcError(grpc.StatusCode.UNIMPLEMENTED, f"unknown method {path}")
            request = codec.decode(data, handler)
            if protocol.name == "connect":
                await self._unary(handler, request, context, codec, start, body, receive)
            else:
                await self._stream(handler, request, context, codec, start, body, protocol, receive)
        except RpcError as error:
            await self._fail(error, protocol, started, start, body)
        except _Gone:
            pass
        except Exception as exc:
            incident = uuid.uuid4().hex[:12]
            internal_error("web")
            logger.error("internal error %s in %s", incident, scope["path"], exc_info=exc)
            internal = RpcError(grpc.StatusCode.INTERNAL, f"internal error (incident {incident})")
            await self._fail(internal, protocol, started, start, body)
        finally:
            if context is not None:
                context.finish()

    async def _read(self, receive: Receive, protocol: _Protocol, headers: dict[str, str]) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max * (2 if protocol.text else 1) + 5:
                raise RpcError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the request is larger than {self._max} bytes (--grpc-max-message-mb)",
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        data = b"".join(chunks)
        if protocol.name == "connect":
            return _decompress(data, headers.get("content-encoding"))
        if protocol.text:
            try:
                data = base64.b64decode(data)
            except binascii.Error:
                raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "the grpc-web-text body is not base64") from None
        encoding = headers.get("connect-content-encoding" if protocol.name == "connect-stream" else "grpc-encoding")
        messages = _envelopes(data, encoding)
        if len(messages) != 1:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"expected one request message, got {len(messages)}")
        return messages[0]

    async def _unary(
        self,
        handler: grpc.RpcMethodHandler,
        request: Any,
        context: WebContext,
        codec: _Codec,
        start: Callable[..., Awaitable[None]],
        body: Callable[..., Awaitable[None]],
        receive: Receive,
    ) -> None:
        box: list[Any] = []

        async def call() -> None:
            box.append(await handler.unary_unary(request, context))

        if not await _race(call(), context, receive):
            return
        if (error := context.status()) is not None:
            raise error
        headers = _header_pairs(context.initial) + _header_pairs(context.trailing_metadata(), "trailer-")
        await start(200, headers)
        await body(codec.encode(box[0]), more=False)

    async def _stream(
        self,
        handler: grpc.RpcMethodHandler,
        request: Any,
        context: WebContext,
        codec: _Codec,
        start: Callable[..., Awaitable[None]],
        body: Callable[..., Awaitable[None]],
        protocol: _Protocol,
        receive: Receive,
    ) -> None:
        headers_sent = False

        async def pump() -> None:
            nonlocal headers_sent
            if handler.unary_stream is None:
                message = await handler.unary_unary(request, context)
                await start(200, _header_pairs(context.initial))
                headers_sent = True
                await body(envelope(0, codec.encode(message)))
                return
            responses = handler.unary_stream(request, context)
            try:
                async for message in responses:
                    if not headers_sent:
                        await start(200, _header_pairs(context.initial))
                        headers_sent = True
                    if type(message) is Several:  # events ready together: one write
                        await body(b"".join(envelope(0, codec.encode(each)) for each in message))
                    else:
                        await body(envelope(0, codec.encode(message)))
            finally:
                await responses.aclose()

        error: RpcError | None = None
        try:
            if not await _race(pump(), context, receive):
                return
        except RpcError as exc:
            error = exc
        error = error or context.status()
        if not headers_sent:
            await start(200, _header_pairs(context.initial))
        if protocol.name == "connect-stream":
            end: dict[str, Any] = {}
            if error is not None:
                end["error"] = _connect_error(error)
            if context.trailing_metadata() and error is None:
                end["metadata"] = _metadata_json(context.trailing_metadata())
            await body(envelope(_CONNECT_END, json.dumps(end).encode()), more=False)
        else:
            trailers = () if error is not None else context.trailing_metadata()
            await body(envelope(_GRPC_WEB_TRAILERS, _grpc_web_trailers(error, trailers)), more=False)

    async def _fail(
        self,
        error: RpcError,
        protocol: _Protocol | None,
        started: bool,
        start: Callable[..., Awaitable[None]],
        body: Callable[..., Awaitable[None]],
    ) -> None:
        if started or protocol is None:
            return  # a response under way ends where it is: only streams start early, and they end themselves
        if protocol.name == "connect":
            _, status = _CONNECT.get(error.code, ("unknown", 500))
            await start(status, _header_pairs([(k, v) for k, v in error.trailers if k != _DETAILS_KEY], "trailer-"))
            await body(json.dumps(_connect_error(error)).encode(), more=False)
        elif protocol.name == "connect-stream":
            await start(200)
            await body(envelope(_CONNECT_END, json.dumps({"error": _connect_error(error)}).encode()), more=False)
        else:
            await start(200)
            await body(envelope(_GRPC_WEB_TRAILERS, _grpc_web_trailers(error, ())), more=False)


async def _plain(send: Send, status: int, text: str) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (
            b"accept-post",
            b"application/json, application/proto, application/connect+json, application/connect+proto, application/grpc-web, application/grpc-web-text",
        ),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text.encode()})


async def _race(call: Awaitable[None], context: WebContext, receive: Receive) -> bool:
    """Runs the call until it ends (True) or the client goes away (False, the call cancelled,
    so that its run follows `on_disconnect`). The call's deadline ends it with
    DEADLINE_EXCEEDED; an abort leaves its status in `context`."""
    task = asyncio.ensure_future(_bounded(call, context.time_remaining()))
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, watcher):
            pending.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)
    if not task.done() or task.cancelled():
        return False
    exc = task.exception()
    if isinstance(exc, OSError):
        return False  # a send to a client that has gone
    if exc is not None and not isinstance(exc, grpc.aio.AbortError):
        raise exc
    return True


async def _bounded(call: Awaitable[None], seconds: float | None) -> None:
    try:
        async with asyncio.timeout(seconds):
            await call
    except TimeoutError:
        raise RpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded") from None


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
