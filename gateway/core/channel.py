"""Fan-out of one run's events to any number of subscribers, with a bounded buffer.

A run publishes into a ring of at most `capacity` events and `max_bytes` of payload. Each
subscriber reads with its own cursor. The ring drops its oldest events as new ones come, but
never one that a subscriber has yet to read: when that would be needed, `wait_writable()`
suspends the run until the subscriber reads (backpressure reaches the graph instead of memory
growing). A subscriber that stays stuck for `stall_timeout` seconds is detached and its stream
ends with SubscriberTooSlow, so one stuck client cannot hold a run forever.

Subscribers of resumable runs are created with `can_lag`: they never hold the run back, and
when the ring has dropped what they need they get FellBehind and read on from the run's log.

A paced subscriber (a run's stream to its client) lingers: it takes its next batch no sooner
than `linger` seconds after its last one, so that a busy stream sends at most one message per
`linger`, with all that is ready, instead of one per event. Each message costs the server (a
write; on gRPC, hops to and from its I/O thread) and the client (a read and a wake-up) far more
than an event in it, and a process that is not busy sends about one event per message, where a
busy one batches by being slow (docs/performance.md). The first event after a quiet spell is
taken at once, and a run's `end` event, the channel's close or a ring that fills up ends the
wait. The thread protocol's subscriptions are not paced: several share one connection, and
each lingering on its own would reorder their events on it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from gateway.core.metrics import DELAY_SAMPLE, SLOW_DROPPED, delayed
from gateway.shared.errors import SubscriberTooSlow
from gateway.shared.records import Event


class FellBehind(Exception):
    """A subscriber that may lag (the run keeps a log) needs events the ring has dropped;
    it goes on from the log after `cursor`."""

    def __init__(self, cursor: int) -> None:
        super().__init__(cursor)
        self.cursor = cursor


class _Subscriber:
    __slots__ = (
        "batches",
        "can_lag",
        "cursor",
        "dropped",
        "fresh",
        "lingering",
        "linger",
        "on_drop",
        "published_at",
        "taken_at",
        "waiter",
    )

    def __init__(self, cursor: int, can_lag: bool, linger: float, on_drop: Callable[[], None] | None = None) -> None:
        self.cursor = cursor  # seq of the last event it has read
        self.can_lag = can_lag  # it never holds the producer back
        self.linger = linger  # seconds it waits after a batch before it takes the next
        self.waiter: asyncio.Future[None] | None = None
        self.dropped = False
        # Told at once, for a reader that learns of its drop only when it reads next.
        self.on_drop = on_drop
        # For the event delay, sampled: live batches taken (a replay of what was published
        # before it came is not one), whether one is waiting, and when its oldest event was
        # published, stamped only for the batches that are observed.
        self.batches = 0
        self.fresh = False
        self.published_at = 0.0
        # Waiting for its linger to pass: new events do not wake it; the run's end, the
        # channel's close, a full ring and a drop do.
        self.lingering = False
        # When it took its last batch.
        self.taken_at = -math.inf


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class RunChannel:
    def __init__(
        self,
        run_id: str,
        *,
        capacity: int = 4096,
        max_bytes: int = 4 * 1024 * 1024,
        stall_timeout: float = 30.0,
        start: int = 0,
        linger: float = 0.0,
    ) -> None:
        self.run_id = run_id
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.stall_timeout = stall_timeout
        self.linger = linger
        self._buffer: deque[Event] = deque()
        self._bytes = 0
        # The seq of the last event published: a run taken over by another process goes on
        # after what the previous attempt published.
        self._seq = start
        self._closed = False
        self._ended = False
        self._subscribers: set[_Subscriber] = set()
        self._writable: asyncio.Event | None = None
        # For a run that keeps a log: the last seq written to it. The ring keeps what is not
        # yet in the log, so a subscriber that falls behind always finds its events somewhere,
        # and hands out only what is in it, after `persist()` writes the rest: an event that
        # reached a client survives a crash of the process, for the client to resume after.
        self.logged_seq: int | None = None
        self.persist: Callable[[], Awaitable[None]] | None = None

    @property
    def held_bytes(self) -> int:
        return self._bytes

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def full(self) -> bool:
        """The ring is past its bounds because a subscriber holds its oldest events; the
        producer should `await wait_writable()`."""
        return len(self._buffer) > self.capacity or self._bytes > self.max_bytes

    def publish(self, name: str, ns: tuple[str, ...], data: bytes) -> Event:
        self._seq += 1
        event = Event(self._seq, name, ns, data)
        self._buffer.append(event)
        self._bytes += len(data)
        if full := self.full:
            self._evict()
            full = self.full
        # The run's last event: nothing more is coming to wait for.
        urgent = full or name == "end"
        if name == "end":
            self._ended = True
        now = 0.0
        for sub in self._subscribers:
            if not sub.fresh:
                sub.fresh = True
                if not sub.batches % DELAY_SAMPLE:
                    sub.published_at = now = now or time.monotonic()
            waiter = sub.waiter
            if waiter is not None and not waiter.done() and (urgent or not sub.lingering):
                waiter.set_result(None)
        return event

    def _holding(self) -> int:
        """The oldest seq the ring must keep: one a subscriber that may not lag has yet to read,
        or the first not yet in the run's log."""
        held = min((s.cursor + 1 for s in self._subscribers if not s.can_lag), default=self._seq + 1)
        return held if self.logged_seq is None else min(held, self.logged_seq + 1)

    def _evict(self) -> None:
        # Drop the oldest events, but none that a subscriber which may not lag has yet to read.
        buffer, keep_from = self._buffer, self._holding()
        while buffer and buffer[0].seq < keep_from and self.full:
            self._bytes -= len(buffer.popleft().data)

    def close(self) -> None:
        self._closed = True
        for sub in self._subscribers:
            if sub.waiter is not None and not sub.waiter.done():
                sub.waiter.set_result(None)
        if self._writable is not None:
            self._writable.set()

    def _lagging(self) -> bool:
        if not self.full:
            return False
        self._evict()
        return self.full

    async def wait_writable(self) -> None:
        """Suspends the producer while a subscriber holds the ring past its bounds."""
        while not self._closed and self._lagging():
            self._writable = asyncio.Event()
            try:
                async with asyncio.timeout(self.stall_timeout):
                    await self._writable.wait()
            except TimeoutError:
                oldest = self._buffer[0].seq
                for sub in [s for s in self._subscribers if s.cursor < oldest and not s.can_lag]:
                    SLOW_DROPPED.inc()
                    sub.dropped = True
                    self._subscribers.discard(sub)
                    if sub.on_drop is not None:
                        sub.on_drop()
                    if sub.waiter is not None and not sub.waiter.done():
                        sub.waiter.set_result(None)
            finally:
                self._writable = None

    def first_seq(self) -> int:
        return self._buffer[0].seq if self._buffer else self._seq + 1

    async def subscribe(
        self,
        after: int | None = None,
        *,
        can_lag: bool = False,
        paced: bool = False,
        on_drop: Callable[[], None] | None = None,
    ) -> AsyncIterator[Sequence[Event]]:
        """Yields batches of events in order. `after=None` means live events only;
        `after=0` replays everything still buffered. Ends when the run's channel closes.

        A subscriber with `can_lag` never holds the producer back; when it needs events the
        ring no longer holds it gets FellBehind, and reads them from the run's log. A `paced`
        one lingers between batches. `on_drop` is called when the subscriber is dropped."""
        sub = _Subscriber(
            self._seq if after is None else max(after, 0), can_lag, self.linger if paced else 0.0, on_drop
        )
        self._subscribers.add(sub)
        try:
            while True:
                if sub.dropped:
                    raise SubscriberTooSlow(
                        f"subscriber fell {self.capacity} events behind run {self.run_id}",
                        metadata={"run_id": self.run_id},
                    )
                if can_lag and sub.cursor < self.first_seq() - 1:
                    raise FellBehind(sub.cursor)
                batch = self.since(sub.cursor)
                if batch:
                    if sub.linger:
                        now = time.monotonic()
                        if (wait := self._linger_left(sub, now)) > 0:
                            await self._linger(sub, wait)
                            continue
                        sub.taken_at = now
                    if self.logged_seq is not None and batch[-1].seq > self.logged_seq and not self._closed:
                        batch = await self._in_log(batch)
                if batch:
                    sub.cursor = batch[-1].seq
                    published_at, sub.published_at = sub.published_at, 0.0
                    if sub.fresh:
                        sub.fresh = False
                        sub.batches += 1
                    if self._writable is not None and not self._lagging():
                        self._writable.set()
                    yield batch
                    # Back here once the reader is done with the batch: written, for a stream.
                    if published_at:
                        delayed(time.monotonic() - published_at)
                    continue
                if self._closed:
                    if self.since(sub.cursor):
                        continue  # held back for a log that failed to take them; the run is over
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
            if self._writable is not None and not self._lagging():
                self._writable.set()

    async def _in_log(self, batch: list[Event]) -> list[Event]:
        """What of `batch` is in the run's log once what it lacks is written; none when the
        write failed (the subscriber waits for the next event or write)."""
        if self.persist is not None:
            await self.persist()
        assert self.logged_seq is not None
        return batch[: max(self.logged_seq - batch[0].seq + 1, 0)]

    def mark_logged(self, seq: int) -> None:
        """Events up to `seq` are in the run's log."""
        self.logged_seq = seq
        for sub in self._subscribers:
            if sub.waiter is not None and not sub.lingering:
                _wake(sub.waiter)

    def _linger_left(self, sub: _Subscriber, now: float) -> float:
        if self._closed or self._ended or self.full:
            return 0.0
        return sub.taken_at + sub.linger - now

    async def _linger(self, sub: _Subscriber, wait: float) -> None:
        """For `wait` seconds, unless the run ends, the ring fills or the subscriber is dropped."""
        loop = asyncio.get_running_loop()
        sub.waiter = fut = loop.create_future()
        sub.lingering = True
        handle = loop.call_later(wait, _wake, fut)
        try:
            await fut
        finally:
            handle.cancel()
            sub.waiter = None
            sub.lingering = False

    def since(self, cursor: int) -> list[Event]:
        buffer = self._buffer
        if not buffer or buffer[-1].seq <= cursor:
            return []
        start = cursor - buffer[0].seq + 1
        if start <= 0:
            return list(buffer)
        return [buffer[i] for i in range(start, len(buffer))]
