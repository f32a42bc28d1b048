"""Backend methods that are one RPC each, declared in a line rather than written: the request is
built from the method's arguments as the backend's interface (gateway.http._backend) names them,
each into the request's field of the same name (gateway.wire.agent_json.fill), and the reply goes
through a converter. A method whose arguments need more than a rename or an enum's number gives
`fields` (the arguments in, the request's fields out) or a whole `request` builder.

    class RemoteBackend(Forwarding):
        get_thread = forward(THREADS, "GetThread", thread_json)
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from types import ModuleType
from typing import Any, overload

import grpc
from google.protobuf.message import Message

from gateway.bridge.errors import raise_for_status
from gateway.http._backend import Backend
from gateway.wire.agent_json import fill

Metadata = tuple[tuple[str, str], ...]


class Service:
    """One gRPC service: its stub, and its requests' classes from the descriptor."""

    def __init__(self, pb2: ModuleType, stub: type) -> None:
        self.pb2 = pb2
        self.stub = stub
        self.name = stub.__name__.removesuffix("Stub")
        self.methods = pb2.DESCRIPTOR.services_by_name[self.name].methods_by_name

    def request_type(self, rpc: str) -> type[Message]:
        request: type[Message] = getattr(self.pb2, self.methods[rpc].input_type.name)
        return request


class Forwarding:
    """What a forwarded method needs of the object it is on: its services' stubs, and the
    request's metadata (the bridge's key and the caller's credentials)."""

    stubs: dict[Service, Any]

    @property
    def metadata(self) -> Metadata:
        raise NotImplementedError

    async def call(self, method: Callable[..., Awaitable[Any]], request: Any) -> Any:
        """One RPC with the request's credentials; its errors as the core's."""
        try:
            return await method(request, metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:
            raise_for_status(exc)


class Forward:
    def __init__(
        self,
        service: Service,
        rpc: str,
        reply: Callable[[Any], Any] | None,
        *,
        fields: Callable[[dict[str, Any]], Mapping[str, Any]] | None,
        request: Callable[..., Message] | None,
        interface: type,
    ) -> None:
        self.service = service
        self.rpc = rpc
        self.reply = reply
        self.fields = fields
        self.request = request
        self.interface = interface
        self.request_type = service.request_type(rpc)
        self.signature: inspect.Signature | None = None
        self.name = rpc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        if self.request is not None:
            return
        self.signature = inspect.signature(getattr(self.interface, name))
        if self.fields is None:
            # Checked as the class is made: a parameter the request has no field for.
            known = self.request_type.DESCRIPTOR.fields_by_name
            for param in self.signature.parameters.values():
                if param.name != "self" and param.kind is not param.VAR_KEYWORD and param.name not in known:
                    raise TypeError(f"{owner.__name__}.{name}: {self.request_type.__name__} has no {param.name!r}")

    def build(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Message:
        if self.request is not None:
            return self.request(*args, **kwargs)
        assert self.signature is not None
        arguments = dict(self.signature.bind(None, *args, **kwargs).arguments)
        arguments.pop("self", None)
        for param in self.signature.parameters.values():
            if param.kind is param.VAR_KEYWORD:
                arguments.update(arguments.pop(param.name, {}))
        return fill(self.request_type(), self.fields(arguments) if self.fields else arguments)

    @overload
    def __get__(self, obj: None, owner: type) -> Forward: ...

    @overload
    def __get__(self, obj: Forwarding, owner: type) -> Callable[..., Any]: ...

    def __get__(self, obj: Forwarding | None, owner: type) -> Forward | Callable[..., Any]:
        if obj is None:
            return self
        method = getattr(obj.stubs[self.service], self.rpc)

        async def forwarded(*args: Any, **kwargs: Any) -> Any:
            response = await obj.call(method, self.build(args, kwargs))
            return self.reply(response) if self.reply is not None else None

        forwarded.__name__ = self.name
        return forwarded


def forward(
    service: Service,
    rpc: str,
    reply: Callable[[Any], Any] | None = None,
    *,
    fields: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None,
    request: Callable[..., Message] | None = None,
    interface: type = Backend,
) -> Forward:
    """A method of `interface` that is the RPC `rpc` of `service`: its arguments into the request
    (or `fields` of them, or the `request` builder's message), the reply through `reply` (None
    returns None)."""
    return Forward(service, rpc, reply, fields=fields, request=request, interface=interface)


def each(field: str, item: Callable[[Any], Any]) -> Callable[[Any], list[Any]]:
    """A reply's repeated `field`, each item converted."""
    return lambda response: [item(x) for x in getattr(response, field)]


def number(field: str) -> Callable[[Any], int]:
    return lambda response: int(getattr(response, field))
