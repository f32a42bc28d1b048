"""Thread streams: every event of every run on a thread, including runs created after the
subscriber joined, the end of each run, and changes of the thread's state.

A subscriber follows each run of its thread with its own reader on the bus, so the run's
backpressure applies as for any other reader: a follower that stops reading holds the run back
until the ring's stall timeout detaches it. Between the runs' readers and the subscriber sits
one bounded queue per subscriber; a state update that finds it full ends the subscription
with SubscriberTooSlow rather than wait or grow.
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections.abc import AsyncIterator, Iterable
from typing import Any, NamedTuple

from gateway.core.metrics import OpenStream
from gateway.core.scheduler import Scheduler
from gateway.core.service import MAX_SEQ, RunService
from gateway.shared.errors import EventIdUnknown, InvalidArgument, SubscriberTooSlow
from gateway.shared.records import Event
from gateway.shared.serde import dumps
from gateway.shared.util import id_part, run_base_ms
from gateway.storage import RecordStore
from gateway.storage.signals import SignalKind, Signals

THREAD_STREAM_MODES = ("run_modes", "lifecycle", "state_update")

# Ids the thread stream accepts as Last-Event-ID: "<ms>", "<ms>-<seq>", "<ms>-*", "-", "-1", "0".
_STREAM_ID = re.compile(r"^(?:-1?|[0-9]+(?:-(?:[0-9]+|\*))?)$")
_MAX_ID = 2**64 - 1

# How many of the thread's newest runs a subscriber looks at when it joins.
_RECENT_RUNS = 100


class ThreadEvent(NamedTuple):
    run_id: str | None  # None for thread-level events (state_update)
    event_id: str  # "<ms>-<seq>"
    name: str  # as in Event.name; a run's end is "metadata" {"status": "run_done", "run_id"}
    ns: tuple[str, ...]
    data: bytes


def parse_thread_event_id(value: str | None) -> tuple[int, int] | None:
    """The (ms, seq) to replay after; None means live only."""
    if not value:
        return None
    value = value.strip()
    if not _STREAM_ID.match(value):
        raise EventIdUnknown("Invalid last-event-id: must be a valid Redis stream ID", field="last_event_id")
    if value in ("-", "-1", "0"):
        return (0, 0)
    ms, _, seq = value.partition("-")
    # A Redis stream id's numbers are unsigned 64-bit; no run has more events than storage
    # holds, so a seq above that is after all of them.
    after = id_part(ms, value, "last-event-id", _MAX_ID)
    if seq == "*":
        return (after, MAX_SEQ)
    return (after, min(id_part(seq or "0", value, "last-event-id", _MAX_ID), MAX_SEQ))


def stream_modes(values: Iterable[str]) -> frozenset[str]:
    modes = set()
    for value in values:
        for mode in value.split(","):
            mode = mode.strip()
            if mode not in THREAD_STREAM_MODES:
                raise InvalidArgument(f"Invalid stream mode: {mode}", field="stream_mode")
            modes.add(mode)
    return frozenset(modes or ("run_modes",))


def _wanted(modes: frozenset[str], event: ThreadEvent) -> bool:
    if event.name == "state_update":
        return "state_update" in modes
    if "run_modes" in modes:
        return True
    # lifecycle: a run's start {run_id, attempt} and its end {status: run_done}.
    return "lifecycle" in modes and event.name == "metadata"


def thread_events(run_id: str, batch: Iterable[Event]) -> list[ThreadEvent]:
    base = run_base_ms(run_id)
    out = []
    for e in batch:
        if e.name == "end":
            data = dumps({"status": "run_done", "run_id": run_id})
            out.append(ThreadEvent(run_id, f"{base}-{e.seq}", "metadata", (), data))
        else:
            out.append(ThreadEvent(run_id, f"{base}-{e.seq}", e.name, e.ns, e.data))
    return out


def _start_after(run_id: str, after: tuple[int, int] | None) -> int | None:
    """The seq after which to replay a run for a subscriber that resumes after `after`; None
    when the run has nothing after it."""
    if after is None:
        return None
    ms, seq = after
    base = run_base_ms(run_id)
    if base > ms:
        return 0
    if base == ms:
        return seq
    return None


class _Follower:
    """One subscriber of one thread: a reader task per followed run, feeding one bounded queue."""

    def __init__(self, runs: RunService, capacity: int) -> None:
        self.runs = runs
        self.queue: asyncio.Queue[list[ThreadEvent]] = asyncio.Queue(capacity)
        self.failed: BaseException | None = None
        self._wake = asyncio.Event()
        # Runs followed or replayed, so that none is read twice; a run is forgotten once its
        # reader ends and the initial listing, which could find it again, is over.
        self.following: set[str] = set()
        self._ended: set[str] = set()
        self.listing = True
        self.tasks: set[asyncio.Task[None]] = set()

    def follow(self, run_id: str, after: int | None) -> None:
        """`after` is taken when the run is found, not when the task first runs, so no event
        falls in between (None: a run elsewhere, followed from where its process is when asked)."""
        if run_id in self.following:
            return
        self.following.add(run_id)
        task = asyncio.create_task(self._pump(run_id, after))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def listed(self) -> None:
        self.listing = False
        self.following -= self._ended
        self._ended.clear()

    def push(self, event: ThreadEvent) -> None:
        try:
            self.queue.put_nowait([event])
        except asyncio.QueueFull:
            self.fail(SubscriberTooSlow("the thread stream's reader fell behind its thread's state updates"))

    def fail(self, exc: BaseException) -> None:
        if self.failed is None:
            self.failed = exc
            self._wake.set()

    async def _pump(self, run_id: str, after: int | None) -> None:
        last: Event | None = None
        try:
            async for batch in self.runs.events(run_id, after):
                last = batch[-1]
                await self.queue.put(thread_events(run_id, batch))
            if last is None or last.name != "end":
                # Over, but its `end` did not reach this process (it expired, or the process
                # that ran it wrote none): its subscribers still learn that it is done.
                seq = last.seq + 1 if last is not None else (after or 0) + 1
                await self.queue.put(thread_events(run_id, [Event(seq, "end", (), b"{}")]))
        except Exception as exc:
            self.fail(exc)
        finally:
            if self.listing:
                self._ended.add(run_id)
            else:
                self.following.discard(run_id)

    async def get(self) -> list[ThreadEvent]:
        if self.failed is None and self.queue.empty():
            getter = asyncio.ensure_future(self.queue.get())
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({getter, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waker.cancel()
                if not getter.done():
                    getter.cancel()
            if getter.done() and not getter.cancelled():
                return getter.result()
        if self.failed is not None:
            raise self.failed
        return self.queue.get_nowait()

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()

    async def close(self) -> None:
        self.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class ThreadStreams:
    """Runs and state updates reach the streams of every process through the signals: a run
    admitted, or a state updated, in one process is followed by subscribers in all of them."""

    def __init__(
        self, runs: RunService, scheduler: Scheduler, store: RecordStore, signals: Signals, *, capacity: int = 64
    ) -> None:
        self._runs = runs
        self._scheduler = scheduler
        self._store = store
        self._signals = signals
        self._capacity = capacity
        self._followers: dict[str, set[_Follower]] = {}
        scheduler.on_admitted(self._admitted)
        signals.subscribe(self._signal)

    def _admitted(self, thread_id: str, run_id: str) -> None:
        for follower in self._followers.get(thread_id, ()):
            follower.follow(run_id, 0)

    async def state_updated(self, thread_id: str, state: dict[str, Any]) -> None:
        ms = time.time_ns() // 1_000_000
        await self._signals.publish("state", {"thread_id": thread_id, "ms": ms, "state": state})

    def _signal(self, kind: SignalKind, payload: dict[str, Any]) -> None:
        if kind != "state":
            return
        thread_id = str(payload.get("thread_id"))
        followers = self._followers.get(thread_id)
        if not followers:
            return
        data = dumps({"state": payload.get("state"), "thread_id": thread_id})
        for follower in followers:
            follower.push(ThreadEvent(None, f"{payload.get('ms', 0)}-0", "state_update", (), data))

    def subscribe(
        self, thread_id: str, *, after: tuple[int, int] | None = None, modes: frozenset[str] = frozenset({"run_modes"})
    ) -> AsyncIterator[list[ThreadEvent]]:
        """Batches of the thread's events until the caller stops; never ends on its own.
        `after` replays what the thread's runs still hold after that (ms, seq) id first.

        Subscribed by this call, before anything is awaited, not when the batches are first
        read: a run created once it has returned is followed (a client that has the stream's
        headers, or the gRPC stream's `subscribed` metadata, and then creates a run sees it)."""
        follower = _Follower(self._runs, self._capacity)
        # Registered before the runs are listed, so a run created meanwhile is not missed.
        self._followers.setdefault(thread_id, set()).add(follower)
        batches = self._batches(thread_id, follower, after, modes)
        # Never read (its response dropped before the body started): it leaves all the same.
        weakref.finalize(batches, self._leave, thread_id, follower, abandoned=True)
        return batches

    def _leave(self, thread_id: str, follower: _Follower, *, abandoned: bool = False) -> None:
        if abandoned:
            follower.cancel()  # the runs it began to follow meanwhile
        followers = self._followers.get(thread_id)
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del self._followers[thread_id]

    async def _batches(
        self, thread_id: str, follower: _Follower, after: tuple[int, int] | None, modes: frozenset[str]
    ) -> AsyncIterator[list[ThreadEvent]]:
        stream = OpenStream("thread")
        try:
            records = await self._store.list_runs(thread_id, status=None, limit=_RECENT_RUNS, offset=0)
            for record in reversed(records):
                run_id = record.run_id
                start = _start_after(run_id, after)
                live = self._scheduler.live(run_id) is not None
                if record.status in ("pending", "running") or live:
                    if start is None and (live or record.resumable):
                        start = await self._runs.last_seq(run_id)
                    follower.follow(run_id, start)
                elif start is not None and run_id not in follower.following:
                    # Finished: replayed in order now, before the live runs' events are read.
                    follower.following.add(run_id)
                    async for batch in self._runs.events(run_id, start):
                        kept = [e for e in thread_events(run_id, batch) if _wanted(modes, e)]
                        if kept:
                            yield kept
            follower.listed()
            while True:
                kept = [e for e in await follower.get() if _wanted(modes, e)]
                if kept:
                    yield kept
        finally:
            stream.close()
            self._leave(thread_id, follower)
            await follower.close()
