"""Backend methods that are one call of the run core each, declared in a line rather than
written: the method's arguments, as the backend's interface (gateway.http._backend) names them,
go by name to the core method's parameters of the same names, and what the core returns goes
through a converter (without one, it is returned as it is).

    class LocalBackend(Calling):
        get_cron = local(Crons.get, to_json)
        search_crons = local(Crons.search, each(to_json))

Checked as the class is made: a parameter of the interface's method that the core method does
not take, or one the core method requires that the interface's method does not give, fails
naming both. The bridge declares its RPCs the same way (gateway.bridge.forward).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Generic, Protocol, TypeVar, overload

from gateway.http._backend import Backend, Json

R = TypeVar("R")
T = TypeVar("T")


class Calling:
    """What a declared call needs of the object it is on: the core's services it calls."""

    services: tuple[object, ...]

    def bound(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """`function` (a core service's method, as its class has it) bound to that service."""
        for service in self.services:
            if getattr(type(service), function.__name__, None) is function:
                bound: Callable[..., Any] = getattr(service, function.__name__)
                return bound
        raise TypeError(f"{type(self).__name__} has no service with {function.__qualname__}")


def _own(signature: inspect.Signature) -> list[inspect.Parameter]:
    return [p for p in signature.parameters.values() if p.name != "self"]


class CoreCall(Generic[T]):
    def __init__(
        self, function: Callable[..., Awaitable[Any]], reply: Callable[[Any], T] | None, interface: type
    ) -> None:
        self.function = function
        self.reply = reply
        self.interface = interface
        self.signature: inspect.Signature | None = None
        self.name = function.__name__
        # The interface's parameters that may come by position, in order, and its defaults.
        self._positional: tuple[str, ...] = ()
        self._defaults: dict[str, Any] = {}

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        where = f"{owner.__name__}.{name}"
        declared = getattr(self.interface, name, None)
        if declared is None:
            raise TypeError(f"{where}: {self.interface.__name__} has no method {name!r}")
        self.signature = inspect.signature(declared)
        own = _own(self.signature)
        self._positional = tuple(p.name for p in own if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
        self._defaults = {p.name: p.default for p in own if p.default is not p.empty}
        core = self.function.__qualname__
        takes = {p.name: p for p in _own(inspect.signature(self.function))}
        by_name = {n for n, p in takes.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        gives = _own(self.signature)
        if not any(p.kind is p.VAR_KEYWORD for p in takes.values()):
            for param in gives:
                if param.kind is not param.VAR_KEYWORD and param.name not in by_name:
                    raise TypeError(f"{where}: {core} has no parameter {param.name!r}")
        # An interface's `**fields` go on as they are: the core names what it takes.
        if not any(p.kind is p.VAR_KEYWORD for p in gives):
            for param in takes.values():
                if (
                    param.name in by_name
                    and param.default is param.empty
                    and param.name not in self.signature.parameters
                ):
                    raise TypeError(f"{where}: {core} requires {param.name!r}, which the interface does not give")

    def arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by the interface's names, its defaults filled in (an
        interface's `**fields` are among `kwargs` already). Not `Signature.bind`: this is on
        every request, and the callers are the routes, which mypy checks against the interface."""
        if len(args) > len(self._positional):
            raise TypeError(f"{self.name}() takes {len(self._positional)} positional arguments, not {len(args)}")
        return {**self._defaults, **dict(zip(self._positional, args, strict=False)), **kwargs}

    @overload
    def __get__(self, obj: None, owner: type) -> CoreCall[T]: ...

    @overload
    def __get__(self, obj: Calling, owner: type) -> Callable[..., Coroutine[Any, Any, T]]: ...

    def __get__(self, obj: Calling | None, owner: type) -> CoreCall[T] | Callable[..., Coroutine[Any, Any, T]]:
        if obj is None:
            return self
        method = obj.bound(self.function)

        async def called(*args: Any, **kwargs: Any) -> T:
            result = await method(**self.arguments(args, kwargs))
            return self.reply(result) if self.reply is not None else result

        called.__name__ = self.name
        # Bound once: the instance's attribute from now on (this descriptor has no __set__).
        obj.__dict__[self.name] = called
        return called


@overload
def local(function: Callable[..., Awaitable[R]], /, *, interface: type = ...) -> CoreCall[R]: ...


@overload
def local(
    function: Callable[..., Awaitable[R]], reply: Callable[[R], T], /, *, interface: type = ...
) -> CoreCall[T]: ...


def local(
    function: Callable[..., Awaitable[Any]],
    reply: Callable[[Any], Any] | None = None,
    /,
    *,
    interface: type = Backend,
) -> CoreCall[Any]:
    """A method of `interface` that is the core's `function` (a service's method, as its class
    has it: `Threads.get`), its result through `reply`."""
    return CoreCall(function, reply, interface)


class Record(Protocol):
    def to_json(self) -> Json: ...


def to_json(record: Record) -> Json:
    return record.to_json()


def each(item: Callable[[R], T]) -> Callable[[Iterable[R]], list[T]]:
    """A list of results, each converted."""
    return lambda results: [item(x) for x in results]
