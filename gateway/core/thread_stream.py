"""Thread streams: every event of every run on a thread, including runs created after the
subscriber joined, the end of each run, and changes of the thread's state.

A subscriber follows each run of its thread with its own cursor on the run's channel, so the
run's backpressure applies as for any other subscriber: a follower that stops reading holds the
run back until the channel's stall timeout detaches it. Between the runs' channels and the
subscriber sits one bounded queue per subscriber.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, NamedTuple

from gateway._utils import run_base_ms
from gateway.core.channel import Event, SubscriberTooSlow
from gateway.core.runs import ActiveRun, RunManager, now_ms
from gateway.errors import InvalidArgument
from gateway.serde import dumps
from gateway.storage import RunRecord

THREAD_STREAM_MODES = ("run_modes", "lifecycle", "state_update")

# Ids the thread stream accepts as Last-Event-ID: "<ms>", "<ms>-<seq>", "<ms>-*", "-", "-1", "0".
_STREAM_ID = re.compile(r"^(?:-1?|\d+(?:-(?:\d+|\*))?)$")

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
        raise InvalidArgument("Invalid last-event-id: must be a valid Redis stream ID")
    if value in ("-", "-1", "0"):
        return (0, 0)
    ms, _, seq = value.partition("-")
    if seq == "*":
        return (int(ms), 2**63)
    return (int(ms), int(seq) if seq else 0)


def stream_modes(values: Iterable[str]) -> frozenset[str]:
    modes = set()
    for value in values:
        for mode in value.split(","):
            mode = mode.strip()
            if mode not in THREAD_STREAM_MODES:
                raise InvalidArgument(f"Invalid stream mode: {mode}")
            modes.add(mode)
    return frozenset(modes or ("run_modes",))


def _wanted(modes: frozenset[str], event: ThreadEvent) -> bool:
    if event.name == "state_update":
        return "state_update" in modes
    if "run_modes" in modes:
        return True
    # lifecycle: a run's start {run_id, attempt} and its end {status: run_done}.
    return "lifecycle" in modes and event.name == "metadata"


class _Follower:
    """One subscriber of one thread: a task per followed run feeding one bounded queue."""

    def __init__(self, runs: RunManager, thread_id: str, capacity: int) -> None:
        self.runs = runs
        self.thread_id = thread_id
        self.queue: asyncio.Queue[list[ThreadEvent] | BaseException] = asyncio.Queue(capacity)
        self.following: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def follow(self, run: ActiveRun, after: int) -> None:
        """`after` is taken when the run is found, not when the task first runs, so no event
        falls in between."""
        if run.run_id in self.following:
            return
        self.following.add(run.run_id)
        self._spawn(self._pump(run, after))

    def push(self, event: ThreadEvent) -> None:
        self._spawn(self.queue.put([event]))

    async def _pump(self, run: ActiveRun, after: int) -> None:
        try:
            async for batch in self.runs.events(run, after=after):
                await self.queue.put(thread_events(run.run_id, run.channel.base_ms, batch))
        except SubscriberTooSlow as exc:
            await self.queue.put(exc)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def thread_events(run_id: str, base: int, batch: Iterable[Event]) -> list[ThreadEvent]:
    out = []
    for e in batch:
        if e.name == "end":
            data = dumps({"status": "run_done", "run_id": run_id})
            out.append(ThreadEvent(run_id, f"{base}-{e.seq}", "metadata", (), data))
        else:
            out.append(ThreadEvent(run_id, f"{base}-{e.seq}", e.name, e.ns, e.data))
    return out


class ThreadStreams:
    def __init__(self, runs: RunManager, *, capacity: int = 64) -> None:
        self._runs = runs
        self._capacity = capacity
        self._followers: dict[str, set[_Follower]] = {}

    def run_created(self, run: ActiveRun) -> None:
        for follower in self._followers.get(run.thread_id, ()):
            follower.follow(run, 0)

    def state_updated(self, thread_id: str, state: dict[str, Any]) -> None:
        followers = self._followers.get(thread_id)
        if not followers:
            return
        ms = now_ms()
        data = dumps({"state": state, "thread_id": thread_id})
        for follower in followers:
            follower.push(ThreadEvent(None, f"{ms}-0", "state_update", (), data))

    async def _replay(self, record: RunRecord, after: tuple[int, int]) -> AsyncIterator[Sequence[Event]]:
        """A finished run's events after `after`: from memory, else from a resumable run's log."""
        base = run_base_ms(record.run_id)
        start = 0 if base > after[0] else after[1] if base == after[0] else None
        if start is None:
            return
        run = self._runs.live(record.run_id)
        if run is not None:
            async for batch in self._runs.events(run, after=start):
                yield batch
        elif record.kwargs.get("resumable"):
            async for batch in self._runs.logged_events(record, after=start):
                yield batch

    async def subscribe(
        self, thread_id: str, *, after: tuple[int, int] | None = None, modes: frozenset[str] = frozenset({"run_modes"})
    ) -> AsyncIterator[list[ThreadEvent]]:
        """Batches of the thread's events until the caller stops; never ends on its own.
        `after` replays what the thread's runs still hold after that (ms, seq) id first."""
        follower = _Follower(self._runs, thread_id, self._capacity)
        # Registered before the runs are listed, so a run created meanwhile is not missed.
        self._followers.setdefault(thread_id, set()).add(follower)
        try:
            records = await self._runs.storage.list_runs(thread_id, status=None, limit=_RECENT_RUNS, offset=0)
            for record in reversed(records):
                run = self._runs.live(record.run_id)
                if run is not None and not run.done.is_set():
                    follower.follow(run, _live_start(run, after))
                elif after is not None and record.run_id not in follower.following:
                    # Finished: replayed in order now, before the live runs' events are read.
                    follower.following.add(record.run_id)
                    base = run_base_ms(record.run_id)
                    async for batch in self._replay(record, after):
                        kept = [e for e in thread_events(record.run_id, base, batch) if _wanted(modes, e)]
                        if kept:
                            yield kept
            while True:
                item = await follower.queue.get()
                if isinstance(item, BaseException):
                    raise item
                kept = [e for e in item if _wanted(modes, e)]
                if kept:
                    yield kept
        finally:
            followers = self._followers.get(thread_id)
            if followers is not None:
                followers.discard(follower)
                if not followers:
                    del self._followers[thread_id]
            await follower.close()


def _live_start(run: ActiveRun, after: tuple[int, int] | None) -> int:
    """The seq after which to follow an active run: what it publishes from now on, or its events
    after `after` when the subscriber replays."""
    if after is not None:
        ms, seq = after
        if run.channel.base_ms > ms:
            return 0
        if run.channel.base_ms == ms:
            return seq
    return run.channel.last_seq
