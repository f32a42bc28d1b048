"""The local event bus on a real sqlite event log: replay then live with no gap and no
duplicate, a reader the ring left behind reading on from the log, joins that end (with an
error when events are gone, never a loop), and bounded memory for finished runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.core.bus import LocalBus, RunWriter
from gateway.shared.errors import EventsExpired
from gateway.shared.settings import Settings
from gateway.storage import SqliteStorage


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    storage = SqliteStorage(str(tmp_path / "bus.sqlite"))
    await storage.setup()
    yield storage
    await storage.close()


def bus_of(log: SqliteStorage, **settings: object) -> LocalBus:
    return LocalBus(log, Settings(channel_capacity=16, **settings))  # type: ignore[arg-type]


async def publish(writer: RunWriter, n: int, *, size: int = 8) -> None:
    for i in range(n):
        writer.publish("custom", (), b'{"i":%d,"p":"%s"}' % (i, b"x" * size))
        if writer.pressing:
            await writer.drain()
    writer.publish("end", (), b'{"status":"success"}')
    await writer.close()


async def seqs(bus: LocalBus, run_id: str, after: int | None, *, logged: bool = False) -> list[int]:
    async with asyncio.timeout(10):
        return [e.seq async for batch in bus.events(run_id, after=after, logged=logged) for e in batch]


async def test_a_reader_behind_the_ring_reads_on_from_the_log(log: SqliteStorage) -> None:
    bus = bus_of(log)
    writer = bus.open("r", resumable=True)
    reader = asyncio.ensure_future(seqs(bus, "r", 0))
    await publish(writer, 1000)
    assert await reader == list(range(1, 1002))
    # After the end, from the log alone, from anywhere.
    assert await seqs(bus, "r", 0) == list(range(1, 1002))
    assert await seqs(bus, "r", 990) == list(range(991, 1002))
    assert await seqs(bus, "r", 1001) == []


async def test_a_join_of_a_run_whose_log_is_gone_ends_with_expired_events(log: SqliteStorage) -> None:
    bus = bus_of(log)
    writer = bus.open("r", resumable=True)
    # Past the ring: its first events are only in the log.
    for i in range(100):
        writer.publish("custom", (), b'{"i":%d}' % i)
        if writer.pressing:
            await writer.drain()
    await writer.drain()
    await log.delete_events("r")  # a rollback or a deleted thread, while the run still runs
    with pytest.raises(EventsExpired):
        await seqs(bus, "r", 0)
    writer.publish("end", (), b'{"status":"success"}')
    await writer.close()
    with pytest.raises(EventsExpired):
        await seqs(bus, "r", 0, logged=True)
    with pytest.raises(EventsExpired):
        await bus.check_replay("r", 0)


async def test_a_replay_from_before_the_retention_is_refused_not_skipped(log: SqliteStorage) -> None:
    bus = bus_of(log, event_retention=0.05)
    await publish(bus.open("old", resumable=True), 10)
    await asyncio.sleep(0.1)
    await publish(bus.open("new", resumable=True), 10)
    assert await bus.prune() == 11
    with pytest.raises(EventsExpired):
        await bus.check_replay("old", 0)
    await bus.check_replay("new", 0)
    await bus.check_replay("new", 11)
    assert await seqs(bus, "new", 0, logged=True) == list(range(1, 12))


async def test_finished_runs_keep_their_events_within_a_bounded_budget(log: SqliteStorage) -> None:
    bus = bus_of(log, retained_bytes=64 * 1024, channel_bytes=1024 * 1024)
    for n in range(50):
        await publish(bus.open(f"r{n}", resumable=False), 10, size=1000)
    # The newest runs are still joinable from the start; the oldest were let go.
    assert await seqs(bus, "r49", 0) == list(range(1, 12))
    assert await seqs(bus, "r0", 0) == []
    assert bus._retained_bytes <= 64 * 1024


async def test_events_published_before_a_live_reader_joins_are_not_replayed(log: SqliteStorage) -> None:
    bus = bus_of(log)
    writer = bus.open("r", resumable=False)
    writer.publish("metadata", (), b"{}")
    live = asyncio.ensure_future(seqs(bus, "r", None))
    await asyncio.sleep(0)
    assert await bus.last_seq("r") == 1
    writer.publish("values", (), b"{}")
    writer.publish("end", (), b"{}")
    await writer.close()
    assert await live == [2, 3]


async def test_a_resumable_run_hands_its_readers_only_events_already_in_its_log(log: SqliteStorage) -> None:
    # A client resumes after any event it got, even from a process that restarted since.
    bus = bus_of(log)
    writer = bus.open("r", resumable=True)
    reader = bus.events("r", after=0)
    got: list[int] = []
    async with asyncio.timeout(10):
        for i in range(3):
            # One at a time, fewer and sooner than the log's batches.
            writer.publish("custom", (), b'{"i":%d}' % i)
            assert not writer.pressing
            got += [e.seq for e in await anext(reader)]
            assert [e.seq for e in await log.read_events("r", 0, 10)] == got == list(range(1, i + 2))
        writer.publish("end", (), b'{"status":"success"}')
        await writer.close()
        assert [e.seq async for batch in reader for e in batch] == [4]


async def test_a_writer_of_large_events_waits_for_the_log_once_4_mib_are_unwritten(log: SqliteStorage) -> None:
    # Bounded by payload as well as by count: 4,096 unwritten events of 16 KiB were 64 MiB.
    bus = bus_of(log)
    writer = bus.open("big", resumable=True)
    mib = b'{"p":"%s"}' % (b"x" * (1024 * 1024))
    published = 0
    while not writer.pressing:
        writer.publish("custom", (), mib)
        published += 1
    assert published <= 4
    await writer.drain()
    assert not writer.pressing
    assert len(await log.read_events("big", 0, 10)) == published
    writer.publish("end", (), b'{"status":"success"}')
    await writer.close()
