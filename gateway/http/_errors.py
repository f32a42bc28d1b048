"""Errors as the HTTP API sends them: `{"detail": "<message>"}` with the error's status code."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.process.metrics import internal_error
from gateway.shared.errors import GatewayError
from gateway.shared.serde import dumps

logger = logging.getLogger("gateway.http")


class NotSupported(GatewayError):
    """The route exists, but the backend behind this server cannot serve it (HTTP 501)."""

    http_status = 501


class PayloadTooLarge(GatewayError):
    """The request body is over the limit (HTTP 413)."""

    http_status = 413


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps({"detail": detail}), status, headers=headers, media_type="application/json")


def incident(exc: BaseException, where: str) -> str:
    """Logs an unexpected error and returns the message that is safe to show for it."""
    ref = uuid.uuid4().hex[:12]
    internal_error("http")
    logger.error("internal error %s in %s", ref, where, exc_info=exc)
    return f"internal error (incident {ref})"


def error_event_payload(exc: BaseException, where: str) -> bytes:
    """The `error` event's data for a stream that fails after its headers went out."""
    if isinstance(exc, GatewayError):
        return dumps({"error": type(exc).__name__, "message": exc.message})
    return dumps({"error": "InternalError", "message": incident(exc, where)})


Endpoint = Callable[[Request], Awaitable[Response]]


def endpoint(func: Endpoint) -> Endpoint:
    """Maps the core's errors onto their statuses; anything unexpected becomes a 500 with a
    safe message and one log line."""

    @functools.wraps(func)
    async def wrapper(request: Request) -> Response:
        try:
            return await func(request)
        except GatewayError as exc:
            return error_response(exc.http_status, exc.message, dict(exc.headers) or None)
        except HTTPException as exc:
            return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))
        except Exception as exc:
            return error_response(500, incident(exc, f"{request.method} {request.url.path}"))

    return wrapper


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))
