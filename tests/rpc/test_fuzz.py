"""Property-based: random protobuf requests to every RPC get a status with a message, or a
stream, never INTERNAL, UNKNOWN or a hang, and the server keeps serving."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor, struct_pb2, timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.gateway.v1 import assistants_pb2, crons_pb2, runs_pb2, store_pb2, threads_pb2

from tests._server import GatewayProcess

SERVICES = [
    assistants_pb2.DESCRIPTOR.services_by_name["AssistantsService"],
    threads_pb2.DESCRIPTOR.services_by_name["ThreadsService"],
    runs_pb2.DESCRIPTOR.services_by_name["RunsService"],
    store_pb2.DESCRIPTOR.services_by_name["StoreService"],
    crons_pb2.DESCRIPTOR.services_by_name["CronsService"],
]
METHODS = [(service, method) for service in SERVICES for method in service.methods]
EXPECTED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
GRAPHS = ["agent", "subgraphs", "chat", "custom", "approval", "failing", "secret", "burst", "nested"]
KNOWN_IDS: list[str] = []


def _nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


# Keys the gateway reads inside Structs (a command's, a checkpoint's), and others.
keys = st.sampled_from(["resume", "update", "goto", "bogus", "checkpoint_id", "checkpoint_ns", "checkpoint_map"]) | (
    st.text(max_size=10)
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    # NaN and the infinities are no JSON, but a Value's number_value may hold them.
    | st.floats()
    | st.text(max_size=20)
    # About as deep as a reply may carry back, and past it.
    | st.integers(28, 40).map(_nested),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)
# The edges of a Timestamp's range (years 1 to 9999) and far past them.
seconds = st.sampled_from([-62135596800, 253402300799, 253402300800, -(2**62), 2**62]) | st.integers(
    -(2**63), 2**63 - 1
)
ids = (
    st.sampled_from(["", "not-a-uuid", "-1", "0", str(uuid.UUID(int=1))])
    | st.builds(lambda: str(uuid.uuid4()))
    | st.text(max_size=40)
)


def _field_value(field: descriptor.FieldDescriptor, draw: Any, known: tuple[str, ...]) -> Any:
    name = field.name
    if field.message_type is not None:
        if field.message_type.full_name == "google.protobuf.Value":
            v = struct_pb2.Value()
            v.struct_value.update({"x": draw(json_values)}) if draw(st.booleans()) else None
            return v
        if field.message_type.full_name == "google.protobuf.Struct":
            s = struct_pb2.Struct()
            s.update(draw(st.dictionaries(keys, json_values, max_size=4)))
            return s
        if field.message_type.full_name == "google.protobuf.Timestamp":
            return timestamp_pb2.Timestamp(seconds=draw(seconds), nanos=draw(st.integers(0, 999_999_999)))
        return None
    if field.type == descriptor.FieldDescriptor.TYPE_STRING:
        if name == "assistant_id":
            return draw(st.sampled_from(GRAPHS) | ids)
        if name.endswith("_id") or name == "before":
            return draw(st.sampled_from(known) | ids) if known else draw(ids)
        return draw(st.text(max_size=30))
    if field.type == descriptor.FieldDescriptor.TYPE_BOOL:
        return draw(st.booleans())
    if field.type == descriptor.FieldDescriptor.TYPE_ENUM:
        return draw(st.integers(-3, 12))
    if field.type == descriptor.FieldDescriptor.TYPE_DOUBLE:
        return draw(st.floats() | st.sampled_from([1e13, 1e300, -1.0, 0.0]))
    return draw(st.integers(-(2**31), 2**31 - 1))


@st.composite
def requests(draw: Any, message: descriptor.Descriptor, known: tuple[str, ...]) -> Any:
    """A request with random fields; ids are random or `known` ones (the pool must not change
    while one test draws: hypothesis replays its choices and would see other data)."""
    cls = {
        "assistants": assistants_pb2,
        "threads": threads_pb2,
        "runs": runs_pb2,
        "store": store_pb2,
        "crons": crons_pb2,
    }
    module = next(m for m in cls.values() if message.name in m.DESCRIPTOR.message_types_by_name)
    msg = getattr(module, message.name)()
    for field in message.fields:
        if not draw(st.booleans()):
            continue
        if field.is_repeated:
            values = [_field_value(field, draw, known) for _ in range(draw(st.integers(0, 3)))]
            getattr(msg, field.name).extend(v for v in values if v is not None)
            continue
        value = _field_value(field, draw, known)
        if value is None:
            continue
        if field.message_type is not None:
            getattr(msg, field.name).CopyFrom(value)
        else:
            setattr(msg, field.name, value)
    return msg


@pytest.fixture(scope="module")
def channel(gateway: GatewayProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(gateway.grpc_target) as ch:
        thread = ch.unary_unary(
            "/langgraph.gateway.v1.ThreadsService/CreateThread",
            request_serializer=threads_pb2.CreateThreadRequest.SerializeToString,
            response_deserializer=threads_pb2.Thread.FromString,
        )(threads_pb2.CreateThreadRequest())
        KNOWN_IDS.append(thread.thread_id)
        yield ch


def call(
    ch: grpc.Channel, service: descriptor.ServiceDescriptor, method: descriptor.MethodDescriptor, request: Any
) -> None:
    path = f"/{service.full_name}/{method.name}"
    module = next(
        m
        for m in (assistants_pb2, threads_pb2, runs_pb2, store_pb2, crons_pb2)
        if method.output_type.name in m.DESCRIPTOR.message_types_by_name
    )
    output = getattr(module, method.output_type.name)
    kwargs: dict[str, Any] = {
        "request_serializer": type(request).SerializeToString,
        "response_deserializer": output.FromString,
    }
    try:
        if method.server_streaming:
            events = ch.unary_stream(path, **kwargs)(request, timeout=20)
            for i, event in enumerate(events):
                first = event.events[0] if isinstance(event, runs_pb2.RunEventBatch) else event
                if i == 0 and first.HasField("metadata") and first.metadata.thread_id:
                    KNOWN_IDS.append(first.metadata.run_id)
                if i >= 20:
                    events.cancel()
                    break
        else:
            ch.unary_unary(path, **kwargs)(request, timeout=20)
    except grpc.RpcError as err:
        code = err.code()  # type: ignore[attr-defined]
        if code == grpc.StatusCode.CANCELLED:
            return
        assert code in EXPECTED, f"{path} -> {code}: {err.details()}"  # type: ignore[attr-defined]
        assert err.details(), f"{path} -> {code} without a message"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("service", "method"), METHODS, ids=[f"{s.name}.{m.name}" for s, m in METHODS])
def test_random_requests(
    channel: grpc.Channel, service: descriptor.ServiceDescriptor, method: descriptor.MethodDescriptor
) -> None:
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(requests(method.input_type, tuple(KNOWN_IDS)))
    def check(request: Any) -> None:
        call(channel, service, method, request)

    check()
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(("service", "method"), METHODS, ids=[f"{s.name}.{m.name}" for s, m in METHODS])
def test_random_bytes(
    channel: grpc.Channel, service: descriptor.ServiceDescriptor, method: descriptor.MethodDescriptor
) -> None:
    """Bytes that may not parse as the request at all: INVALID_ARGUMENT, not UNKNOWN."""
    path = f"/{service.full_name}/{method.name}"
    kind = channel.unary_stream if method.server_streaming else channel.unary_unary
    call = kind(path, request_serializer=bytes, response_deserializer=bytes)

    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.binary(max_size=64))
    def check(data: bytes) -> None:
        try:
            result = call(data, timeout=20)
            if method.server_streaming:
                for i, _ in enumerate(result):
                    if i >= 20:
                        result.cancel()
                        break
        except grpc.RpcError as err:
            code = err.code()  # type: ignore[attr-defined]
            if code != grpc.StatusCode.CANCELLED:
                assert code in EXPECTED, f"{path} -> {code}: {err.details()}"  # type: ignore[attr-defined]
                assert err.details()  # type: ignore[attr-defined]

    check()
