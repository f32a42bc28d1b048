"""Server reflection under grpc.reflection.v1 and grpc.reflection.v1alpha (grpcurl, which speaks
v1alpha, in test_grpcurl.py)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from gateway.rpc.server import SERVICE_NAMES
from tests._server import GatewayProcess

V1 = "grpc.reflection.v1.ServerReflection"
V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"


def v1_client(channel: grpc.Channel, pool: descriptor_pool.DescriptorPool) -> tuple[Any, Any, Any]:
    """A v1 reflection client made from the descriptor in `pool`: the request class, the
    response class and the call."""
    method = pool.FindServiceByName(V1).methods_by_name["ServerReflectionInfo"]
    request = message_factory.GetMessageClass(method.input_type)
    response = message_factory.GetMessageClass(method.output_type)
    call = channel.stream_stream(
        f"/{V1}/ServerReflectionInfo",
        request_serializer=request.SerializeToString,
        response_deserializer=response.FromString,
    )
    return request, response, call


def test_v1alpha_describes_the_gateway_and_v1(gateway: GatewayProcess) -> None:
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        runs = pool.FindServiceByName("langgraph.gateway.v1.RunsService")
        assert runs.methods_by_name["RunStream"].output_type.full_name == "langgraph.gateway.v1.RunEvent"
        v1 = pool.FindServiceByName(V1)
        assert v1.file.package == "grpc.reflection.v1"
        assert v1.methods_by_name["ServerReflectionInfo"].input_type.full_name == (
            "grpc.reflection.v1.ServerReflectionRequest"
        )


def test_v1_lists_and_describes_every_service(gateway: GatewayProcess) -> None:
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        # The v1 client is made from the descriptor the gateway publishes, not from its modules.
        published = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        Request, _, info = v1_client(channel, published)
        listed, runs, health, unknown = list(
            info(
                iter(
                    [
                        Request(list_services=""),
                        Request(file_containing_symbol="langgraph.gateway.v1.RunsService"),
                        Request(file_containing_symbol="grpc.health.v1.Health"),
                        Request(file_containing_symbol="no.such.Service"),
                    ]
                ),
                timeout=30,
            )
        )
    names = {service.name for service in listed.list_services_response.service}
    assert names == {*SERVICE_NAMES, "grpc.health.v1.Health", V1, V1ALPHA}
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(f) for f in runs.file_descriptor_response.file_descriptor_proto
    ]
    service = next(s for f in files for s in f.service if s.name == "RunsService")
    assert "RunStream" in {m.name for m in service.method}
    health_files = health.file_descriptor_response.file_descriptor_proto
    assert "grpc.health.v1" in {descriptor_pb2.FileDescriptorProto.FromString(f).package for f in health_files}
    assert unknown.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert unknown.original_request.file_containing_symbol == "no.such.Service"
