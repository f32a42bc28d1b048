"""Errors the core raises for the edges to map onto gRPC status codes and HTTP statuses."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType

# How much of a client's value an error message quotes: a UUID whole, but never so much that
# the message grows with the input (gRPC answers status details past its metadata limit with
# RESOURCE_EXHAUSTED instead of the error).
SHOWN_CHARS = 64


def shown(value: object) -> str:
    """`value` as an error message quotes it: its repr, cut to a short prefix."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}..."


# A message that starts by naming its field: `thread_id ...`, `stream_mode[1]: ...`,
# `command.resume ...`.
_LEADING_FIELD = re.compile(r"([a-z][a-z0-9_]*(?:\[\d+\])?(?:\.[a-z][a-z0-9_]*(?:\[\d+\])?)*)[ :]")
# Words a message starts with that name no field.
_NOT_FIELDS = frozenset(
    {"the", "a", "an", "give", "either", "each", "every", "no", "one", "only", "this", "at", "cannot"}
)


class GatewayError(Exception):
    """An expected failure with a message safe to show to the client.

    `reason` is the stable name a client branches on (the gRPC status's ErrorInfo, the list in
    docs/errors.md); `metadata` the ids involved."""

    http_status = 500
    reason = "INTERNAL"
    # Seconds after which a retry may succeed (gRPC RetryInfo, HTTP Retry-After); None: never
    # by itself.
    retry_after: float | None = None
    # Response headers that go with the error (an auth handler's WWW-Authenticate).
    headers: Mapping[str, str] = MappingProxyType({})

    def __init__(self, message: str, *, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(GatewayError):
    """A request field is malformed or missing (HTTP 422). `field` names it as the proto does
    (`thread_id`, `stream_mode[1]`, `command.resume`); `violations` lists several, each
    (field, description)."""

    http_status = 422
    reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        violations: Sequence[tuple[str, str]] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, metadata=metadata)
        if violations:
            self.violations = list(violations)
        elif field is not None:
            self.violations = [(field, message)]
        elif (match := _LEADING_FIELD.match(message)) and match.group(1) not in _NOT_FIELDS:
            self.violations = [(match.group(1), message)]
        else:
            self.violations = []


class EventIdUnknown(InvalidArgument):
    """A Last-Event-ID that is no event id of the stream asked for (HTTP 422)."""

    reason = "EVENT_ID_UNKNOWN"


class BadRequest(InvalidArgument):
    """A request is well-formed but cannot be served as asked (HTTP 400)."""

    http_status = 400


class NotFound(GatewayError):
    """An assistant, thread, run, cron, store item or checkpoint does not exist (HTTP 404).
    `resource` is its kind ("thread", "assistant", ...) and `id` its id: the reason is
    `<RESOURCE>_NOT_FOUND` and the metadata holds `<resource>_id`."""

    http_status = 404
    reason = "NOT_FOUND"

    def __init__(
        self,
        message: str,
        *,
        resource: str | None = None,
        id: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        ids = dict(metadata or {})
        if resource is not None and id is not None:
            ids.setdefault(f"{resource}_id", str(id))
        super().__init__(message, metadata=ids)
        self.resource = resource
        self.id = id
        if resource is not None:
            self.reason = f"{resource.upper()}_NOT_FOUND"


class Conflict(GatewayError):
    """A resource is not in a state that allows the request (HTTP 409)."""

    http_status = 409
    reason = "FAILED_PRECONDITION"


class ThreadBusy(Conflict):
    """The thread is running a run and the request's multitask strategy is reject (HTTP 409)."""

    reason = "THREAD_BUSY"


class AlreadyExists(Conflict):
    """A resource with that id exists already (HTTP 409)."""

    reason = "ALREADY_EXISTS"


class RequestIdReused(AlreadyExists):
    """A creation's request_id (or Idempotency-Key) was used within the idempotency window for a
    request with another body (HTTP 409, gRPC ALREADY_EXISTS)."""

    reason = "REQUEST_ID_REUSED"


class EventsExpired(GatewayError):
    """Events asked for by a replay are past their retention (HTTP 410)."""

    http_status = 410
    reason = "EVENTS_EXPIRED"


class TooManyRuns(GatewayError):
    """A thread's queue of runs is full (HTTP 429)."""

    http_status = 429
    reason = "RUN_QUEUE_FULL"
    retry_after = 1.0


class Unauthenticated(GatewayError):
    """The API key or the credentials are missing or wrong (HTTP 401)."""

    http_status = 401
    reason = "UNAUTHENTICATED"


class PermissionDenied(GatewayError):
    """An auth handler refused the caller this action (HTTP 403)."""

    http_status = 403
    reason = "PERMISSION_DENIED"


class Refused(GatewayError):
    """An auth handler refused the request with a status of its own choosing, which passes
    through to the client with the handler's headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.http_status = status
        self.headers = dict(headers or {})
        self.reason = _REFUSED_REASONS.get(status, "REFUSED")


_REFUSED_REASONS = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}


class Unavailable(GatewayError):
    """A backend (Postgres, Redis, the gateway behind the bridge) cannot be reached (HTTP 503)."""

    http_status = 503
    reason = "UNAVAILABLE"
    retry_after = 1.0


class ShuttingDown(Unavailable):
    """The gateway is shutting down and takes no new runs (HTTP 503): another replica, or this
    one once restarted, will."""

    reason = "SHUTTING_DOWN"


class TimedOut(GatewayError):
    """A query ran past its time bound and was stopped (HTTP 504, gRPC DEADLINE_EXCEEDED)."""

    http_status = 504
    reason = "TIMED_OUT"


class SubscriberTooSlow(GatewayError):
    """A stream's reader held its run back for longer than the stall timeout and was detached
    (gRPC RESOURCE_EXHAUSTED; over SSE, after the headers, an `error` event)."""

    http_status = 429
    reason = "SUBSCRIBER_TOO_SLOW"
    retry_after = 0.0


class StartupError(Exception):
    """The gateway cannot start (a port in use, a database it cannot open, tracing asked for
    without its packages): told in one line, and the process exits non-zero."""
