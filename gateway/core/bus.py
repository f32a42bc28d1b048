"""The event bus: how a run's events get from the executor to every reader of the run, live or
late, in this process or (with another implementation of the same protocol) in any replica.

A writer publishes a run's events in order, each with the next seq; `events(run_id, after)`
yields them to a reader from the one after `after` (None: from the next one published), live
and replayed alike, with no gap and no duplicate, and ends after the run's `end` event or when
the bus holds nothing more of the run.

`LocalBus` keeps each run's events in a ring in memory (gateway.core.channel) and, for
resumable runs, in the event log of the storage; a reader the ring has left behind reads on
from the log and hands back to the ring at the next seq. A resumable run's readers hand out
only what the log holds, writing what it lacks first: a client resumes after any event it got,
even from another process once this one died.

With a shared log (Redis streams, gateway.storage.redis_backend), a run executing in another process is
read from the log: replayed, then tailed until its `end`. Events go to the log in the background
as they come (one pipelined write per batch) for resumable runs, for runs that another process
may be streaming (those claimed from the queue: their creator may be elsewhere), and for the
others from the moment a reader elsewhere asks for them (`watch`, through the signals): with
what the ring still holds after that reader's position first, so that a reader elsewhere gets
what a reader here would. A run nobody outside its process reads costs the log nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol

from gateway.core.channel import FellBehind, RunChannel
from gateway.shared.errors import EventsExpired
from gateway.shared.records import Event
from gateway.shared.settings import Settings
from gateway.storage import EventLog
from gateway.storage.signals import SignalKind, Signals

# Resumable runs write their events to the log in batches of this many, or this often.
_LOG_BATCH = 256
_LOG_INTERVAL = 0.05
_LOG_READ = 1000
# With a shared log, written in the background: the writer waits only past this many unwritten.
_LOG_BACKLOG = 4096
# Nor more than this much payload, whichever comes first (as the ring holds at most 4 MiB): a
# writer of large events waits for the log before its backlog costs more memory than that.
_LOG_BACKLOG_BYTES = 4 * 1024 * 1024
# A tail that has waited this long without news checks whether its run is over.
_TAIL_CHECK = 2.0
# A tail of a run that writes no log unless asked: how long it waits, after asking, before it
# asks whether the run is over (the process that holds the run answers in milliseconds).
_WATCH_WAIT = 0.5
# How long a reader waits for the `end` of a run recorded as ended, whose log holds the run.
_END_WAIT = 2.0

logger = logging.getLogger("gateway.bus")


class SharedLog(EventLog, Protocol):
    """An event log every process reads, holding every run's events while it runs."""

    async def wait_events(self, run_id: str, after: int, seconds: float) -> bool: ...

    async def retain(self, run_id: str, seconds: float) -> None: ...


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
    def open(self, run_id: str, *, resumable: bool, after: int = 0, mirror: bool = True) -> RunWriter:
        """The writer of a run whose events so far end at seq `after` (a run taken over).
        `mirror=False`: with a shared log, a run that is not resumable writes to it only once a
        reader in another process asks (the run was admitted and claimed here, by a caller
        that streams it from here)."""
        ...

    def events(
        self,
        run_id: str,
        *,
        after: int | None,
        logged: bool = False,
        paced: bool = False,
        on_drop: Callable[[], None] | None = None,
    ) -> AsyncIterator[Sequence[Event]]:
        """`logged`: the run keeps its events for replay (a resumable run), so a replay that
        finds none of them raises EventsExpired instead of yielding nothing. `paced`: a run's
        stream to its client, which lingers between batches (gateway.core.channel). `on_drop`:
        called when the reader, having held the run back too long, is detached."""
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
    __slots__ = (
        "channel",
        "closed_at",
        "flushed_at",
        "flushing",
        "resumable",
        "run_id",
        "unlogged",
        "unlogged_bytes",
        "writing",
    )

    def __init__(self, run_id: str, channel: RunChannel, *, resumable: bool, logged: bool) -> None:
        self.run_id = run_id
        self.channel = channel
        # Its readers may fall behind the ring and read on from the log, which has every event.
        self.resumable = resumable
        # Events not yet in the log; None while its events do not go to the log.
        self.unlogged: list[Event] | None = [] if logged else None
        self.unlogged_bytes = 0  # their payload
        self.flushed_at = time.monotonic()
        self.flushing: asyncio.Task[None] | None = None
        # One write to the log at a time, so that they land, and `logged_seq` moves, in order.
        self.writing = asyncio.Lock()
        self.closed_at = 0.0


class _LocalWriter:
    __slots__ = ("_bus", "_run", "_run_id")

    def __init__(self, bus: LocalBus, run_id: str, run: _Run) -> None:
        self._bus = bus
        self._run_id = run_id
        self._run = run

    def publish(self, name: str, ns: tuple[str, ...], data: bytes) -> Event:
        run = self._run
        event = run.channel.publish(name, ns, data)
        if run.unlogged is not None:
            run.unlogged.append(event)
            run.unlogged_bytes += len(data)
            if self._bus.shared is not None and run.flushing is None:
                self._bus.flush_soon(run)
        return event

    @property
    def pressing(self) -> bool:
        run = self._run
        unlogged = run.unlogged
        if unlogged:
            if run.unlogged_bytes >= _LOG_BACKLOG_BYTES:
                return True
            if self._bus.shared is not None:
                if len(unlogged) >= _LOG_BACKLOG:
                    return True
            elif len(unlogged) >= _LOG_BATCH or time.monotonic() - run.flushed_at > _LOG_INTERVAL:
                return True
        return run.channel.full

    async def drain(self) -> None:
        # Always before the ring could drop them: the ring keeps what the log lacks.
        await self._bus.flush(self._run)
        if self._run.channel.full:
            await self._run.channel.wait_writable()

    async def close(self) -> None:
        try:
            await self._bus.flush(self._run)
            await self._bus.retain(self._run)
        finally:
            self._run.channel.close()
            self._bus._closed(self._run_id, self._run)

    async def discard(self) -> None:
        self._run.unlogged = None
        await self._bus.log.delete_events(self._run_id)


class LocalBus:
    def __init__(self, log: EventLog, settings: Settings, *, shared: SharedLog | None = None) -> None:
        self.log: EventLog = shared if shared is not None else log
        self.shared = shared
        self.settings = settings
        self._settings = settings
        # With a shared log: whether a run that this process does not execute has ended (its
        # record says so), asked when a tail has waited long without news.
        self.ended: Callable[[str], Awaitable[bool]] | None = None
        self._signals: Signals | None = None
        # Writes to the shared log that no writer waits for (runs mirrored after their end).
        self._tasks: set[asyncio.Task[None]] = set()
        self._runs: dict[str, _Run] = {}
        # Finished runs without a log, with their rings, for a late reader from the start
        # (a background run joined after it ended): bounded in bytes and in age.
        self._retained: OrderedDict[str, _Run] = OrderedDict()
        self._retained_bytes = 0

    def open(self, run_id: str, *, resumable: bool, after: int = 0, mirror: bool = True) -> RunWriter:
        s = self._settings
        channel = RunChannel(
            run_id,
            capacity=s.channel_capacity,
            max_bytes=s.channel_bytes,
            stall_timeout=s.stall_timeout,
            start=after,
            linger=s.stream_linger_ms / 1000,
        )
        run = _Run(run_id, channel, resumable=resumable, logged=resumable or (self.shared is not None and mirror))
        if resumable:
            channel.logged_seq = after
            channel.persist = lambda: self._persist(run)
        self._runs[run_id] = run
        return _LocalWriter(self, run_id, run)

    # Writing to the log

    def flush_soon(self, run: _Run) -> None:
        """Writes the run's events as the loop gets to it: events published meanwhile share the write."""
        run.flushing = asyncio.create_task(self._flush_in_background(run))

    async def flush(self, run: _Run) -> None:
        async with run.writing:
            while run.unlogged:
                events, run.unlogged = run.unlogged, []
                run.unlogged_bytes = 0
                try:
                    await self.log.append_events(run.run_id, events)
                except BaseException:
                    # Still to be written, before what came meanwhile (the ring keeps them all).
                    if run.unlogged is not None:
                        run.unlogged[:0] = events
                        run.unlogged_bytes += sum(len(e.data) for e in events)
                    raise
                if run.resumable:
                    run.channel.mark_logged(events[-1].seq)
            run.flushed_at = time.monotonic()

    async def _persist(self, run: _Run) -> None:
        """A reader of a resumable run is about to hand out events not yet in the log: they
        are written first, by a write the bus owns, so that a reader that leaves meanwhile
        cancels none. A failure is logged; the reader waits for the next event or write."""
        if run.unlogged:
            if run.flushing is None:
                self.flush_soon(run)
            assert run.flushing is not None
            await asyncio.shield(run.flushing)

    async def _flush_in_background(self, run: _Run) -> None:
        try:
            await self.flush(run)
        except Exception:
            # The next drain or close writes them, or fails the run there.
            logger.warning("writing the events of run %s failed; retrying with the next batch", run.run_id)
        finally:
            run.flushing = None

    async def retain(self, run: _Run) -> None:
        """A run that ended keeps what the shared log has of it for its retention."""
        if self.shared is not None and run.unlogged is not None:
            s = self._settings
            await self.shared.retain(run.run_id, s.event_retention if run.resumable else s.retained_seconds)

    # Readers in other processes

    def connect(self, signals: Signals) -> None:
        """With a shared log: readers here ask other processes for the runs they hold, and
        this process answers theirs."""
        self._signals = signals
        signals.subscribe(self._signal)

    def _signal(self, kind: SignalKind, payload: dict[str, object]) -> None:
        if kind == "watch":
            after = payload.get("after")
            self.mirror(str(payload.get("run_id")), after if isinstance(after, int) else None)

    def mirror(self, run_id: str, after: int | None) -> None:
        """A reader in another process reads the run from after `after` (None: from now on):
        unless its events already go to the shared log, they do from now on, after those the
        ring still holds past `after`. A run that ended writes those once, with its `end`."""
        run = self._find(run_id)
        if self.shared is None or run is None or run.unlogged is not None:
            return
        run.unlogged = run.channel.since(after) if after is not None else []
        run.unlogged_bytes = sum(len(e.data) for e in run.unlogged)
        if not run.channel.closed:
            if run.unlogged:
                self.flush_soon(run)
            return

        async def write_once() -> None:
            with contextlib.suppress(Exception):  # the reader waits, then reads the run's end from storage
                await self.flush(run)
                await self.retain(run)

        task = asyncio.create_task(write_once())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, run_id: str, after: int | None) -> None:
        if self._signals is not None:
            await self._signals.publish("watch", {"run_id": run_id, "after": after})

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

    async def events(
        self,
        run_id: str,
        *,
        after: int | None,
        logged: bool = False,
        paced: bool = False,
        on_drop: Callable[[], None] | None = None,
    ) -> AsyncIterator[Sequence[Event]]:
        run = self._find(run_id)
        if run is None and self.shared is not None:
            async for batch in self._tail(self.shared, run_id, after, logged=logged):
                yield batch
            return
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
            async for batch in channel.subscribe(after, paced=paced, on_drop=on_drop):
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
                    raise EventsExpired(
                        f"the events of run {run_id} after {after} are no longer kept", metadata={"run_id": run_id}
                    )
                after = kept[-1].seq
                yield kept
            try:
                async for batch in channel.subscribe(after, can_lag=True, paced=paced):
                    after = batch[-1].seq
                    yield batch
                return
            except FellBehind as lag:
                after = lag.cursor

    async def last_seq(self, run_id: str) -> int:
        run = self._find(run_id)
        if run is not None:
            return run.channel.last_seq
        return await self.log.last_seq(run_id)

    async def _tail(
        self, log: SharedLog, run_id: str, after: int | None, *, logged: bool
    ) -> AsyncIterator[Sequence[Event]]:
        """A run executing elsewhere (or queued, or over): its events from the shared log,
        replayed and then followed, until its `end`. One that is not `logged` (resumable) may
        write to the log only once asked, from where this reader is: it is asked, again after
        each wait without news (a signal is only a hint), and what it skips is not missed."""
        watch = not logged and self._signals is not None
        asked = after
        if after is None:
            after = await log.last_seq(run_id)
        if watch:
            await self._watch(run_id, asked)
        # Whether the run is over is asked at once when the log has nothing new (a run that
        # ended long ago; one that writes when asked, after it could answer), then again only
        # after a wait without news.
        check = not watch
        wait = _WATCH_WAIT if watch else _TAIL_CHECK
        seen = False
        while True:
            events = await self._read(run_id, after, strict=not watch)
            if events:
                after = asked = events[-1].seq
                seen = True
                yield events
                if events[-1].name == "end":
                    return
                continue
            if check and self.ended is not None and await self.ended(run_id):
                # Its end is recorded before its `end` is written: a log that holds the run
                # gets its `end` within a write. One that holds nothing of it has expired (or
                # was never written) and gets nothing more.
                final = await self._read(run_id, after, strict=not watch)
                if not (final and final[-1].name == "end") and (final or seen or await log.read_events(run_id, 0, 1)):
                    last = final[-1].seq if final else after
                    if await log.wait_events(run_id, last, _END_WAIT):
                        final += await self._read(run_id, last, strict=not watch)
                if final:
                    yield final
                return
            check = not await log.wait_events(run_id, after, wait)
            if check and watch:
                await self._watch(run_id, asked)
            wait = _TAIL_CHECK

    async def check_replay(self, run_id: str, after: int) -> None:
        if self._find(run_id) is not None:
            return
        first = await self._read(run_id, after, 1)
        if not first and not await self.log.read_events(run_id, 0, 1):
            # Nothing logged: a run that has not written yet (queued, or just started by
            # another process) is followed from its start; one that ended has expired.
            if self.ended is not None and not await self.ended(run_id):
                return
            raise self._expired(run_id)

    def _expired(self, run_id: str) -> EventsExpired:
        return EventsExpired(
            f"the events of run {run_id} are no longer kept (the retention is {self._settings.event_retention:.0f} s)",
            metadata={"run_id": run_id},
        )

    async def _read(self, run_id: str, after: int, limit: int = _LOG_READ, *, strict: bool = True) -> list[Event]:
        logged = await self.log.read_events(run_id, after, limit)
        if strict and logged and logged[0].seq != after + 1:
            raise EventsExpired(
                f"the events of run {run_id} after {after} up to {logged[0].seq - 1} are no longer kept "
                f"(the retention is {self._settings.event_retention:.0f} s)",
                metadata={"run_id": run_id},
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
