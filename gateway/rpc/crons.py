"""The CronsService servicer: crons over gRPC, translated to and from the core's Crons
(gateway.core.crons), which takes the same cron body as the HTTP API."""

from __future__ import annotations

from datetime import UTC
from typing import Any, TypeAlias

import grpc
from google.protobuf import timestamp_pb2
from langgraph.gateway.v1 import crons_pb2, crons_pb2_grpc

from gateway.core.gateway import Gateway
from gateway.rpc.servicers import unary
from gateway.shared.errors import InvalidArgument
from gateway.shared.serde import MAX_NESTING
from gateway.wire import convert

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def _on_run_completed(value: int) -> str | None:
    if not value:
        return None
    name = convert.ON_RUN_COMPLETED_NAMES.get(value)  # type: ignore[call-overload]
    if name is None:
        raise InvalidArgument(f"on_run_completed: unknown value {value}")
    return str(name)


def _body(request: crons_pb2.CreateCronRequest | crons_pb2.UpdateCronRequest) -> dict[str, Any]:
    """The cron body of the HTTP API: the payload's run-create fields, and the cron's own."""
    # The payload is a bag of a run's fields, each of which may nest as deep as a field may.
    body = convert.struct_to_dict(request, "payload", levels=MAX_NESTING + 1)
    if isinstance(request, crons_pb2.UpdateCronRequest):
        given = [name for name in ("schedule", "timezone") if request.HasField(name)]
    else:
        given = [name for name in ("schedule", "timezone") if getattr(request, name)]
    for name in given:
        body[name] = getattr(request, name)
    if request.HasField("enabled"):
        body["enabled"] = request.enabled
    if request.HasField("end_time"):
        body["end_time"] = _end_time(request.end_time)
    if (on_run_completed := _on_run_completed(request.on_run_completed)) is not None:
        body["on_run_completed"] = on_run_completed
    if request.HasField("metadata"):
        body["metadata"] = convert.struct_to_dict(request, "metadata")
    return body


def _end_time(value: timestamp_pb2.Timestamp) -> str:
    try:
        return value.ToDatetime(tzinfo=UTC).isoformat()
    except (ValueError, OverflowError):
        raise InvalidArgument(
            f"end_time is not a valid Timestamp (seconds={value.seconds}, nanos={value.nanos}): "
            "it must fall in the years 1 to 9999"
        ) from None


def _filter_id(value: str) -> str | None:
    return value or None


class CronsService(crons_pb2_grpc.CronsServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self._crons = gateway.crons

    @unary
    async def CreateCron(self, request: crons_pb2.CreateCronRequest, context: Context) -> crons_pb2.Cron:
        cron = await self._crons.create(_body(request), thread_id=request.thread_id or None)
        return convert.cron(cron)

    @unary
    async def GetCron(self, request: crons_pb2.GetCronRequest, context: Context) -> crons_pb2.Cron:
        return convert.cron(await self._crons.get(request.cron_id))

    @unary
    async def UpdateCron(self, request: crons_pb2.UpdateCronRequest, context: Context) -> crons_pb2.Cron:
        body = _body(request)
        if request.clear_end_time:
            if "end_time" in body:
                raise InvalidArgument("end_time and clear_end_time: give one or the other")
            body["end_time"] = None
        return convert.cron(await self._crons.update(request.cron_id, body))

    @unary
    async def DeleteCron(self, request: crons_pb2.DeleteCronRequest, context: Context) -> crons_pb2.DeleteCronResponse:
        await self._crons.delete(request.cron_id)
        return crons_pb2.DeleteCronResponse()

    @unary
    async def SearchCrons(
        self, request: crons_pb2.SearchCronsRequest, context: Context
    ) -> crons_pb2.SearchCronsResponse:
        if request.limit < 0 or request.offset < 0:
            raise InvalidArgument("limit and offset must not be negative")
        found = await self._crons.search(
            assistant_id=_filter_id(request.assistant_id),
            thread_id=_filter_id(request.thread_id),
            enabled=request.enabled if request.HasField("enabled") else None,
            metadata=convert.struct_to_dict(request, "metadata") or None,
            limit=request.limit or 10,
            offset=request.offset,
            sort_by=request.sort_by or None,
            sort_order=request.sort_order or None,
        )
        return crons_pb2.SearchCronsResponse(crons=[convert.cron(c) for c in found])

    @unary
    async def CountCrons(self, request: crons_pb2.CountCronsRequest, context: Context) -> crons_pb2.CountCronsResponse:
        count = await self._crons.count(
            assistant_id=_filter_id(request.assistant_id),
            thread_id=_filter_id(request.thread_id),
            metadata=convert.struct_to_dict(request, "metadata") or None,
        )
        return crons_pb2.CountCronsResponse(count=count)
