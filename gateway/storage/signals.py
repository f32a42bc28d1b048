"""Signals between the processes that share a deployment: runs are waiting to be claimed, a
run is to be cancelled, a run was admitted to a thread, a thread's state was updated, a reader
wants a run's events in the shared log.

Signals are hints with no delivery guarantee (Redis pub/sub drops them across a disconnect):
everything they say can also be found in storage, and the scheduler polls it. A cancel also
leaves a mark (`cancel_mark`) that the process which claims the run later reads.

`LocalSignals` is the single-process case: a signal reaches this process's handlers only.
Every backend encodes a signal with the gateway's serializer (`gateway.shared.serde`) and hands its
handlers the decoded JSON, so a payload holding LangChain messages or other non-JSON values
reaches them the same way in one process as across several.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal, Protocol, get_args

from gateway.shared.serde import dumps, loads

SignalKind = Literal["wake", "cancel", "admitted", "state", "watch"]
Handler = Callable[[SignalKind, dict[str, Any]], None]
_KINDS: frozenset[str] = frozenset(get_args(SignalKind))


def encode(kind: SignalKind, payload: dict[str, Any]) -> bytes:
    return dumps({"kind": kind, "payload": payload})


def decode(data: bytes) -> tuple[SignalKind, dict[str, Any]] | None:
    """The signal in `data`; None for what no backend's `encode` wrote."""
    try:
        message = loads(data)
        kind, payload = message["kind"], message["payload"]
    except (ValueError, KeyError, TypeError):
        return None
    if kind not in _KINDS or not isinstance(payload, dict):
        return None
    return kind, payload


class Signals(Protocol):
    def subscribe(self, handler: Handler) -> None:
        """`handler` gets every signal published by any process, this one included."""
        ...

    async def publish(self, kind: SignalKind, payload: dict[str, Any]) -> None: ...

    async def mark_cancel(self, run_id: str, action: str) -> None:
        """Leaves the cancel of a run where the process that claims it will find it."""
        ...

    async def cancel_mark(self, run_id: str) -> str | None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class LocalSignals:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []
        self._marks: dict[str, str] = {}

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    async def publish(self, kind: SignalKind, payload: dict[str, Any]) -> None:
        # What a remote process would get: the payload as JSON, not the publisher's objects.
        payload = loads(encode(kind, payload))["payload"]
        loop = asyncio.get_running_loop()
        for handler in self._handlers:
            # As a remote signal would: after the publisher's own step, not inside it.
            loop.call_soon(handler, kind, payload)

    async def mark_cancel(self, run_id: str, action: str) -> None:
        self._marks[run_id] = action

    async def cancel_mark(self, run_id: str) -> str | None:
        return self._marks.pop(run_id, None)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass
