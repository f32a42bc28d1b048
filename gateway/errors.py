"""Errors the core raises for the edges to map onto gRPC status codes and HTTP statuses."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# How much of a client's value an error message quotes: a UUID whole, but never so much that
# the message grows with the input (gRPC answers status details past its metadata limit with
# RESOURCE_EXHAUSTED instead of the error).
SHOWN_CHARS = 64


def shown(value: object) -> str:
    """`value` as an error message quotes it: its repr, cut to a short prefix."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}..."


class GatewayError(Exception):
    """An expected failure with a message safe to show to the client."""

    http_status = 500
    # Response headers that go with the error (an auth handler's WWW-Authenticate).
    headers: Mapping[str, str] = MappingProxyType({})

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(GatewayError):
    """A request field is malformed or missing (HTTP 422)."""

    http_status = 422


class BadRequest(GatewayError):
    """A request is well-formed but cannot be served as asked (HTTP 400)."""

    http_status = 400


class NotFound(GatewayError):
    """An assistant, thread or run does not exist (HTTP 404)."""

    http_status = 404


class Conflict(GatewayError):
    """The thread is busy, or a resource exists already (HTTP 409)."""

    http_status = 409


class AlreadyExists(Conflict):
    """A resource with that id exists already (HTTP 409)."""


class RequestIdReused(AlreadyExists):
    """A creation's request_id (or Idempotency-Key) was used within the idempotency window for a
    request with another body (HTTP 409, gRPC ALREADY_EXISTS)."""


class EventsExpired(GatewayError):
    """Events asked for by a replay are past their retention (HTTP 410)."""

    http_status = 410


class TooManyRuns(GatewayError):
    """A thread's queue of runs is full (HTTP 429)."""

    http_status = 429


class Unauthenticated(GatewayError):
    """The API key or the credentials are missing or wrong (HTTP 401)."""

    http_status = 401


class PermissionDenied(GatewayError):
    """An auth handler refused the caller this action (HTTP 403)."""

    http_status = 403


class Refused(GatewayError):
    """An auth handler refused the request with a status of its own choosing, which passes
    through to the client with the handler's headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.http_status = status
        self.headers = dict(headers or {})


class Unavailable(GatewayError):
    """The gateway is shutting down and takes no new runs (HTTP 503)."""

    http_status = 503


class TimedOut(GatewayError):
    """A query ran past its time bound and was stopped (HTTP 504, gRPC DEADLINE_EXCEEDED)."""

    http_status = 504


class SubscriberTooSlow(GatewayError):
    """A stream's reader held its run back for longer than the stall timeout and was detached
    (gRPC RESOURCE_EXHAUSTED; over SSE, after the headers, an `error` event)."""

    http_status = 429


class StartupError(Exception):
    """The gateway cannot start (a port in use, a database it cannot open, tracing asked for
    without its packages): told in one line, and the process exits non-zero."""
