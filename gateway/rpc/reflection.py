"""Server reflection as `grpc.reflection.v1.ServerReflection`, which current clients ask for
first, and as `grpc.reflection.v1alpha.ServerReflection`, which older ones (grpcurl before
1.8.8) know alone.

grpcio-reflection serves v1alpha only. v1 is the same protocol under another package, field
for field, so the one servicer answers both: a v1 call is read and answered with the v1alpha
messages, whose bytes are the same. The v1 file descriptor, made from v1alpha's with the
package renamed, goes into the default pool so that reflection can describe v1 too."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import _async as reflection_aio
from grpc_reflection.v1alpha import reflection_pb2

V1ALPHA = "grpc.reflection.v1alpha"
V1 = "grpc.reflection.v1"
SERVICE_NAMES = (f"{V1}.ServerReflection", f"{V1ALPHA}.ServerReflection")
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def v1_file() -> FileDescriptor:
    """`grpc/reflection/v1/reflection.proto` in the default pool: the one there, or v1alpha's
    renamed (with v1's options, as the published file has them)."""
    pool = descriptor_pool.Default()
    try:
        return pool.FindFileByName(_V1_FILE)
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name, proto.package = _V1_FILE, V1
    prefix = f".{V1ALPHA}."
    for message in proto.message_type:
        for field in message.field:
            if field.type_name:
                field.type_name = field.type_name.replace(prefix, f".{V1}.", 1)
    for method in proto.service[0].method:
        method.input_type = method.input_type.replace(prefix, f".{V1}.", 1)
        method.output_type = method.output_type.replace(prefix, f".{V1}.", 1)
    proto.options.Clear()
    proto.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    proto.options.java_multiple_files = True
    proto.options.java_package = "io.grpc.reflection.v1"
    proto.options.java_outer_classname = "ServerReflectionProto"
    return pool.AddSerializedFile(proto.SerializeToString())


def handlers(service_names: Sequence[str]) -> tuple[grpc.GenericRpcHandler, ...]:
    """Both versions' handlers, listing `service_names` and themselves."""
    v1_file()
    servicer = reflection_aio.ReflectionServicer((*service_names, *SERVICE_NAMES))
    method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    return tuple(grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": method}) for name in SERVICE_NAMES)
