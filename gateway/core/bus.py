"""The event bus: how a run's events get from the executor to every reader of the run, live or
late, in this process or (with another implementation of the same protocol) in any replica.

A writer publishes a run's events in order, each with the next seq; `events(run_id, after)`
yields them to a reader from the one after `after` (None: from the next one published), live
and replayed alike, with no gap and no duplicate, and ends after the run's `end` event or when
the bus holds nothing more of the run.

`LocalBus` keeps each run's events in a ring in memory (gateway.core.channel) and, for
resumable runs, in the event log of the storage; a reader the ring has left behind reads on
from the log and hands back to the ring at the next seq.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from gateway.core.channel import FellBehind, RunChannel
from gateway.errors import EventsExpired
from gateway.records import Event
from gateway.settings import Settings
from gateway.storage import EventLog

# Resumable runs write their events to the log in batches of this many, or this often.
_LOG_BATCH = 256
_LOG_INTERVAL = 0.05
_LOG_READ = 1000


class RunWriter(Protocol):
    """The producing end of one run's events; only the run's executor holds it."""

    def publish(self, name: str, ns: tuple[str, ...], data: bytes) -> Event: ...

    @property
    def pressing(self) -> bool:
        """True when the writer must `drain()` before it publishes more."""
        ...

    async def drain(self) -> None:
        """Writes what is due to the log and waits while readers hold the run back."""
        ...

    async def close(self) -> None:
        """After the run's `end`: writes what is left, and ends the readers' streams."""
        ...

    async def discard(self) -> None:
        """Forgets what was logged of the run and logs nothing more (a rollback)."""
        ...


class EventBus(Protocol):
    def open(self, run_id: str, *, resumable: bool) -> RunWriter: ...

    def events(self, run_id: str, *, after: int | None, logged: bool = False) -> AsyncIterator[Sequence[Event]]:
        """`logged`: the run keeps its events for replay (a resumable run), so a replay that
        finds none of them raises EventsExpired instead of yielding nothing."""
        ...

    async def last_seq(self, run_id: str) -> int:
        """The seq of the run's last event published so far (0 for none)."""
        ...

    async def check_replay(self, run_id: str, after: int) -> None:
        """Raises EventsExpired when a replay of a logged run after `after` would miss events,
        so that an edge can refuse it before its response starts."""
        ...

    async def forget(self, run_ids: Sequence[str]) -> None:
        """Drops what the bus keeps of finished runs (their thread was deleted)."""
        ...

    async def prune(self) -> int:
        """Drops events past their retention; returns how many."""
        ...


class _Run:
    __slots__ = ("channel", "closed_at", "flushed_at", "resumable", "unlogged")

    def __init__(self, channel: RunChannel, resumable: bool) -> None:
        self.channel = channel
        self.resumable = resumable
        # Resumable runs: events not yet in the log.
        self.unlogged: list[Event] | None = [] if resumable else None
        self.flushed_at = time.monotonic()
        self.closed_at = 0.0


class _LocalWriter:
    __slots__ = ("_bus", "_run", "_run_id")

    def __init__(self, bus: LocalBus, run_id: str, run: _Run) -> None:
        self._bus = bus
        self._run_id = run_id
        self._run = run

    def publish(self, name: str, ns: tuple[str, ...], data: bytes) -> Event:
        event = self._run.channel.publish(name, ns, data)
        if self._run.unlogged is not None:
            self._run.unlogged.append(event)
        return event

    @property
    def pressing(self) -> bool:
        run = self._run
        unlogged = run.unlogged
        if unlogged and (len(unlogged) >= _LOG_BATCH or time.monotonic() - run.flushed_at > _LOG_INTERVAL):
            return True
        return run.channel.full

    async def _flush(self) -> None:
        run = self._run
        if run.unlogged:
            events, run.unlogged = run.unlogged, []
            await self._bus.log.append_events(self._run_id, events)
            run.channel.logged_seq = events[-1].seq
        run.flushed_at = time.monotonic()

    async def drain(self) -> None:
        # Always before the ring could drop them: the ring keeps what the log lacks.
        await self._flush()
        if self._run.channel.full:
            await self._run.channel.wait_writable()

    async def close(self) -> None:
        try:
            await self._flush()
        finally:
            self._run.channel.close()
            self._bus._closed(self._run_id, self._run)

    async def discard(self) -> None:
        self._run.unlogged = None
        await self._bus.log.delete_events(self._run_id)


class LocalBus:
    def __init__(self, log: EventLog, settings: Settings) -> None:
        self.log = log
        self._settings = settings
        self._runs: dict[str, _Run] = {}
        # Finished runs without a log, with their rings, for a late reader from the start
        # (a background run joined after it ended): bounded in bytes and in age.
        self._retained: OrderedDict[str, _Run] = OrderedDict()
        self._retained_bytes = 0

    def open(self, run_id: str, *, resumable: bool) -> RunWriter:
        s = self._settings
        channel = RunChannel(
            run_id, capacity=s.channel_capacity, max_bytes=s.channel_bytes, stall_timeout=s.stall_timeout
        )
        run = _Run(channel, resumable)
        if resumable:
            channel.logged_seq = 0
        self._runs[run_id] = run
        return _LocalWriter(self, run_id, run)

    def _closed(self, run_id: str, run: _Run) -> None:
        self._runs.pop(run_id, None)
        if run.resumable:
            return  # its log has every event
        run.closed_at = time.monotonic()
        self._retained[run_id] = run
        self._retained_bytes += run.channel.held_bytes
        self._expire()

    def _expire(self) -> None:
        oldest = time.monotonic() - self._settings.retained_seconds
        retained = self._retained
        while retained:
            run = next(iter(retained.values()))
            if run.closed_at >= oldest and self._retained_bytes <= self._settings.retained_bytes:
                break
            retained.popitem(last=False)
            self._retained_bytes -= run.channel.held_bytes

    def _find(self, run_id: str) -> _Run | None:
        run = self._runs.get(run_id)
        if run is None:
            self._expire()
            run = self._retained.get(run_id)
        return run

    async def events(self, run_id: str, *, after: int | None, logged: bool = False) -> AsyncIterator[Sequence[Event]]:
        run = self._find(run_id)
        if run is None:
            if after is not None:
                found = False
                async for batch in self._logged(run_id, after):
                    found = True
                    yield batch
                # Nothing after `after`: the reader has it all, unless nothing is kept at all.
                if logged and not found and not await self.log.read_events(run_id, 0, 1):
                    raise self._expired(run_id)
            return
        channel = run.channel
        if not run.resumable:
            async for batch in channel.subscribe(after):
                yield batch
            return
        # A resumable run's readers never hold it back: what the ring no longer holds comes
        # from the log, then the ring takes over at the next seq, as often as a slow reader
        # falls behind.
        if after is None:
            after = channel.last_seq
        while True:
            while after < channel.first_seq() - 1:
                kept = await self._read(run_id, after)
                if not kept:
                    # The ring dropped only what the log had: the log is gone (a rollback,
                    # a deleted thread, retention), and with it events this reader needs.
                    raise EventsExpired(f"the events of run {run_id} after {after} are no longer kept")
                after = kept[-1].seq
                yield kept
            try:
                async for batch in channel.subscribe(after, can_lag=True):
                    after = batch[-1].seq
                    yield batch
                return
            except FellBehind as lag:
                after = lag.cursor

    async def last_seq(self, run_id: str) -> int:
        run = self._find(run_id)
        return 0 if run is None else run.channel.last_seq

    async def check_replay(self, run_id: str, after: int) -> None:
        if self._find(run_id) is not None:
            return
        first = await self._read(run_id, after, 1)
        if not first and not await self.log.read_events(run_id, 0, 1):
            raise self._expired(run_id)

    def _expired(self, run_id: str) -> EventsExpired:
        return EventsExpired(
            f"the events of run {run_id} are no longer kept (the retention is {self._settings.event_retention:.0f} s)"
        )

    async def _read(self, run_id: str, after: int, limit: int = _LOG_READ) -> list[Event]:
        logged = await self.log.read_events(run_id, after, limit)
        if logged and logged[0].seq != after + 1:
            raise EventsExpired(
                f"the events of run {run_id} after {after} up to {logged[0].seq - 1} are no longer kept "
                f"(the retention is {self._settings.event_retention:.0f} s)"
            )
        return logged

    async def _logged(self, run_id: str, after: int) -> AsyncIterator[Sequence[Event]]:
        while logged := await self._read(run_id, after):
            after = logged[-1].seq
            yield logged

    async def forget(self, run_ids: Sequence[str]) -> None:
        for run_id in run_ids:
            run = self._retained.pop(run_id, None)
            if run is not None:
                self._retained_bytes -= run.channel.held_bytes
            await self.log.delete_events(run_id)

    async def prune(self) -> int:
        self._expire()
        return await self.log.prune_events(self._settings.event_retention)

    async def prune_forever(self) -> None:
        """Prunes every tenth of the retention (at most every minute) until cancelled."""
        interval = min(max(self._settings.event_retention / 10, 0.1), 60.0)
        while True:
            await asyncio.sleep(interval)
            await self.prune()
