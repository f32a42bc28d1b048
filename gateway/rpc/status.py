"""Rich error statuses (AIP-193): every non-OK status the gateway ends a call with carries a
google.rpc.Status in the `grpc-status-details-bin` trailer, whose ErrorInfo names a stable
reason (docs/errors.md) in the domain "langgraph.gateway" and the ids involved."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "langgraph.gateway"


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def details(
    code: grpc.StatusCode,
    message: str,
    reason: str,
    *,
    metadata: Mapping[str, str] | None = None,
    violations: Sequence[tuple[str, str]] = (),
    resource: tuple[str, str] | None = None,
    retry_after: float | None = None,
) -> tuple[tuple[str, bytes], ...]:
    """The `grpc-status-details-bin` trailer of a status with `code` and `message`."""
    status = status_pb2.Status(code=code.value[0], message=message)
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=dict(metadata or {}))
    status.details.append(_packed(info))
    if violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
                for field, description in violations
            ]
        )
        status.details.append(_packed(bad))
    if resource is not None:
        kind, name = resource
        status.details.append(_packed(error_details_pb2.ResourceInfo(resource_type=kind, resource_name=name)))
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry_after * 1e9))
        status.details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    return tuple(rpc_status.to_status(status).trailing_metadata)


async def abort(
    context: Any,
    code: grpc.StatusCode,
    message: str,
    reason: str,
    *,
    metadata: Mapping[str, str] | None = None,
    violations: Sequence[tuple[str, str]] = (),
    retry_after: float | None = None,
    trailers: Sequence[tuple[str, str | bytes]] = (),
) -> None:
    """Ends the call with a status that carries its details."""
    rich = details(code, message, reason, metadata=metadata, violations=violations, retry_after=retry_after)
    await context.abort(code, message, trailing_metadata=(*trailers, *rich))


def deny(code: grpc.StatusCode, message: str, reason: str) -> grpc.RpcMethodHandler:
    """A handler that refuses any call, as an interceptor answers instead of the method."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await abort(context, code, message, reason)

    return grpc.unary_unary_rpc_method_handler(refuse)
