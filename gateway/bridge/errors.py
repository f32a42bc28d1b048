"""The gateway's gRPC statuses as the core's errors (gateway.shared.errors), which the HTTP
routes answer as the gateway's own HTTP edge would."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc

from gateway.http._errors import NotSupported, PayloadTooLarge
from gateway.shared.errors import (
    AlreadyExists,
    Conflict,
    EventsExpired,
    GatewayError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TooManyRuns,
    Unauthenticated,
    Unavailable,
)
from gateway.shared.util import digits
from gateway.wire.convert import MAX_MESSAGE_BYTES


class UpstreamError(GatewayError):
    """The gateway behind the bridge failed in a way the HTTP API has no status for (HTTP 502)."""

    http_status = 502


class UpstreamInternal(GatewayError):
    http_status = 500


_STATUS: dict[grpc.StatusCode, type[GatewayError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: Conflict,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.UNIMPLEMENTED: NotSupported,
    # The gateway's only RESOURCE_EXHAUSTED before a stream starts is a full thread queue.
    grpc.StatusCode.RESOURCE_EXHAUSTED: TooManyRuns,
    grpc.StatusCode.OUT_OF_RANGE: EventsExpired,
    grpc.StatusCode.INTERNAL: UpstreamInternal,
}


# What gRPC reports when the gateway closes the connection while the bridge connects: what a
# gateway that serves TLS does to a plaintext bridge, and one that requires mTLS to a bridge
# without a client certificate. Said as such, with the options that fix it.
_CLOSED_AT_CONNECT = ("failed to connect", "Socket closed")
_TLS_HINT = (
    " (the gateway closed the connection: if it serves TLS, start the bridge with --target-tls or "
    "--target-ca-file, and if it requires mTLS, with --target-cert-file and --target-key-file)"
)


def raise_for_status(exc: grpc.aio.AioRpcError) -> NoReturn:
    raise_status(exc.code(), exc.details(), exc.trailing_metadata())


def raise_status(code: grpc.StatusCode, details: str | None, trailing: Any) -> NoReturn:
    details = details or code.name
    if code == grpc.StatusCode.UNAVAILABLE and all(words in details for words in _CLOSED_AT_CONNECT):
        details += _TLS_HINT
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
        raise PayloadTooLarge(f"the request is over the gRPC message limit of {MAX_MESSAGE_BYTES} bytes") from None
    error = _STATUS.get(code, UpstreamError)(details)
    # The gateway's errors carry their HTTP status (and an auth handler's headers) in the
    # trailers: the bridge answers as the gateway's own HTTP edge would.
    trailers = dict(trailing or ())
    status = trailers.pop("x-http-status", None)
    if isinstance(status, str) and digits(status) and 400 <= int(status) <= 599:
        error.http_status = int(status)
        error.headers = {k: v for k, v in trailers.items() if isinstance(v, str)}
    raise error from None
