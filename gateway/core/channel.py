"""Fan-out of one run's events to any number of subscribers, with a bounded buffer.

A run publishes into a ring of at most `capacity` events. Each subscriber reads with its own
cursor. The producer never runs more than `capacity` events ahead of the slowest attached
subscriber: when it would, `wait_writable()` suspends the graph until that subscriber reads
(backpressure reaches the graph instead of memory growing). A subscriber that stays stuck
for `stall_timeout` seconds is detached and its stream ends with SubscriberTooSlow, so one
stuck client cannot hold a run forever.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import NamedTuple


class Event(NamedTuple):
    """One event of a run: the single representation every edge encodes from."""

    seq: int
    # The event name without namespace: "values", "messages/partial", "metadata", "error", ...
    name: str
    # The subgraph namespace, one "<node>:<task id>" segment per level.
    ns: tuple[str, ...]
    # The payload, compact UTF-8 JSON, encoded once.
    data: bytes


class SubscriberTooSlow(Exception):
    """A subscriber fell more than the buffer behind for longer than the stall timeout."""


class _Subscriber:
    __slots__ = ("cursor", "waiter", "dropped")

    def __init__(self, cursor: int) -> None:
        self.cursor = cursor  # seq of the last event it has read
        self.waiter: asyncio.Future[None] | None = None
        self.dropped = False


class RunChannel:
    def __init__(self, run_id: str, base_ms: int, *, capacity: int = 4096, stall_timeout: float = 30.0) -> None:
        self.run_id = run_id
        self.base_ms = base_ms
        self.capacity = capacity
        self.stall_timeout = stall_timeout
        self._buffer: deque[Event] = deque()
        self._seq = 0
        self._closed = False
        self._subscribers: set[_Subscriber] = set()
        self._writable: asyncio.Event | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def last_seq(self) -> int:
        return self._seq

    def event_id(self, seq: int) -> str:
        return f"{self.base_ms}-{seq}"

    def publish(self, name: str, ns: tuple[str, ...], data: bytes) -> Event:
        self._seq += 1
        event = Event(self._seq, name, ns, data)
        buffer = self._buffer
        buffer.append(event)
        if len(buffer) > self.capacity:
            buffer.popleft()
        for sub in self._subscribers:
            waiter = sub.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        return event

    def close(self) -> None:
        self._closed = True
        for sub in self._subscribers:
            if sub.waiter is not None and not sub.waiter.done():
                sub.waiter.set_result(None)
        if self._writable is not None:
            self._writable.set()

    def _lagging(self) -> _Subscriber | None:
        floor = self._seq - self.capacity
        for sub in self._subscribers:
            if sub.cursor <= floor:
                return sub
        return None

    async def wait_writable(self) -> None:
        """Suspends the producer while a subscriber is a whole buffer behind."""
        while not self._closed and self._lagging() is not None:
            self._writable = asyncio.Event()
            try:
                await asyncio.wait_for(self._writable.wait(), self.stall_timeout)
            except TimeoutError:
                floor = self._seq - self.capacity
                for sub in [s for s in self._subscribers if s.cursor <= floor]:
                    sub.dropped = True
                    self._subscribers.discard(sub)
                    if sub.waiter is not None and not sub.waiter.done():
                        sub.waiter.set_result(None)
            finally:
                self._writable = None

    def first_seq(self) -> int:
        return self._buffer[0].seq if self._buffer else self._seq + 1

    async def subscribe(self, after: int | None = None) -> AsyncIterator[Sequence[Event]]:
        """Yields batches of events in order. `after=None` means live events only;
        `after=0` replays everything still buffered. Ends when the run's channel closes."""
        sub = _Subscriber(self._seq if after is None else max(after, 0))
        self._subscribers.add(sub)
        try:
            while True:
                if sub.dropped:
                    raise SubscriberTooSlow(f"subscriber fell {self.capacity} events behind run {self.run_id}")
                batch = self._since(sub.cursor)
                if batch:
                    sub.cursor = batch[-1].seq
                    if self._writable is not None and self._lagging() is None:
                        self._writable.set()
                    yield batch
                    continue
                if self._closed:
                    return
                sub.waiter = asyncio.get_running_loop().create_future()
                try:
                    await sub.waiter
                finally:
                    sub.waiter = None
                # One more turn of the loop lets events that are already on their way (a
                # node's burst of writes) join this batch; a lone event waits no longer.
                await asyncio.sleep(0)
        finally:
            self._subscribers.discard(sub)
            if self._writable is not None and self._lagging() is None:
                self._writable.set()

    def _since(self, cursor: int) -> list[Event]:
        buffer = self._buffer
        if not buffer or buffer[-1].seq <= cursor:
            return []
        start = cursor - buffer[0].seq + 1
        if start <= 0:
            return list(buffer)
        return [buffer[i] for i in range(start, len(buffer))]
