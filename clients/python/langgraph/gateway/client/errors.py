"""The gateway's errors as exceptions: one class per reason of the status's `ErrorInfo`
(domain "langgraph.gateway"), with the ids it names, the bad fields and the retry delay.

A status without details (an older gateway, a proxy in between) is mapped by its code."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

DOMAIN = "langgraph.gateway"
_DETAILS_KEY = "grpc-status-details-bin"


class GatewayError(Exception):
    """A call the gateway refused or could not complete."""

    #: The reason when the status carries none: the code's name.
    default_reason = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        status_code: grpc.StatusCode,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
        field_violations: list[tuple[str, str]] | None = None,
        retry_delay: float | None = None,
        resource: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.reason = reason or status_code.name
        #: The ids involved: thread_id, run_id, assistant_id, ...
        self.metadata = dict(metadata or {})
        #: (field, description) for each bad field of an INVALID_ARGUMENT.
        self.field_violations = list(field_violations or [])
        #: Seconds to wait before a retry, when the gateway says.
        self.retry_delay = retry_delay
        #: (resource type, name) of a NOT_FOUND.
        self.resource = resource

    def __getattr__(self, name: str) -> str:
        # err.thread_id, err.run_id, ... from the ids the error names.
        metadata = self.__dict__.get("metadata", {})
        if name in metadata:
            return str(metadata[name])
        raise AttributeError(name)

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class InvalidArgument(GatewayError):
    pass


class NotFoundError(GatewayError):
    pass


class AssistantNotFound(NotFoundError):
    pass


class ThreadNotFound(NotFoundError):
    pass


class RunNotFound(NotFoundError):
    pass


class CronNotFound(NotFoundError):
    pass


class ItemNotFound(NotFoundError):
    pass


class CheckpointNotFound(NotFoundError):
    pass


class GraphNotFound(NotFoundError):
    pass


class FailedPrecondition(GatewayError):
    pass


class ThreadBusy(FailedPrecondition):
    pass


class AlreadyExists(GatewayError):
    pass


class RequestIdReused(AlreadyExists):
    pass


class ResourceExhausted(GatewayError):
    pass


class RunQueueFull(ResourceExhausted):
    pass


class EventIdUnknown(InvalidArgument):
    pass


class EventsExpired(GatewayError):
    pass


class SubscriberTooSlow(ResourceExhausted):
    pass


class Unauthenticated(GatewayError):
    pass


class PermissionDenied(GatewayError):
    pass


class Unavailable(GatewayError):
    pass


class ShuttingDown(Unavailable):
    pass


class DeadlineExceeded(GatewayError):
    pass


class Unimplemented(GatewayError):
    pass


class InternalError(GatewayError):
    pass


REASONS: dict[str, type[GatewayError]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "ASSISTANT_NOT_FOUND": AssistantNotFound,
    "THREAD_NOT_FOUND": ThreadNotFound,
    "RUN_NOT_FOUND": RunNotFound,
    "CRON_NOT_FOUND": CronNotFound,
    "ITEM_NOT_FOUND": ItemNotFound,
    "CHECKPOINT_NOT_FOUND": CheckpointNotFound,
    "THREAD_BUSY": ThreadBusy,
    "ALREADY_EXISTS": AlreadyExists,
    "REQUEST_ID_REUSED": RequestIdReused,
    "RUN_QUEUE_FULL": RunQueueFull,
    "EVENT_ID_UNKNOWN": EventIdUnknown,
    "EVENTS_EXPIRED": EventsExpired,
    "SUBSCRIBER_TOO_SLOW": SubscriberTooSlow,
    "UNAUTHENTICATED": Unauthenticated,
    "PERMISSION_DENIED": PermissionDenied,
    "SHUTTING_DOWN": ShuttingDown,
    "UNAVAILABLE": Unavailable,
    "NOT_FOUND": NotFoundError,
    "GRAPH_NOT_FOUND": GraphNotFound,
    "SERVICE_NOT_FOUND": NotFoundError,
    "FAILED_PRECONDITION": FailedPrecondition,
    "RESOURCE_EXHAUSTED": ResourceExhausted,
    "TIMED_OUT": DeadlineExceeded,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
    "UNIMPLEMENTED": Unimplemented,
    "INTERNAL": InternalError,
    "REFUSED": GatewayError,
}

_CODES: dict[grpc.StatusCode, type[GatewayError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.OUT_OF_RANGE: EventsExpired,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.INTERNAL: InternalError,
}


def _details(trailing: Any) -> status_pb2.Status | None:
    for key, value in trailing or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                return None
    return None


def from_rpc_error(error: grpc.RpcError) -> GatewayError:
    """The exception for a failed call (grpc.aio.AioRpcError or a sync grpc.Call)."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or code.name
    status = _details(error.trailing_metadata())
    reason: str | None = None
    fields: dict[str, Any] = {}
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                if info.domain == DOMAIN:
                    reason = info.reason
                    fields["metadata"] = dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                fields["field_violations"] = [(v.field, v.description) for v in bad.field_violations]
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                fields["retry_delay"] = retry.retry_delay.ToTimedelta().total_seconds()
            elif detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
                resource = error_details_pb2.ResourceInfo()
                detail.Unpack(resource)
                fields["resource"] = (resource.resource_type, resource.resource_name)
    cls = REASONS.get(reason or "") or _CODES.get(code, GatewayError)
    return cls(message, status_code=code, reason=reason, **fields)
