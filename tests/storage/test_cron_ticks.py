"""Crons ticking on a clock the test moves, in process on each deployment: which ticks fire,
counted exactly, with no wait for the machine's clock (tests/http/test_crons.py has them fire on
it, through a served gateway)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from gateway.core.crons import Crons
from gateway.core.gateway import Gateway
from gateway.shared.records import CronRecord
from gateway.storage import Storage

EVERY_SECOND = "* * * * * *"
QUICK = {"n": 1, "delay": 0}


class Clock:
    """Half a second past a whole second, a year from now: the core's own crons, which read the
    machine's clock, never find these due."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=500_000) + timedelta(days=365)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 1) -> None:
        self.now += timedelta(seconds=seconds)


def crons_of(core: Gateway, clock: Clock) -> Crons:
    """Crons on the core's storage and runs that read `clock` (not started: the test ticks)."""
    return Crons(core.storage, core.assistants, core.runs, clock=clock)


async def _runs(core: Gateway, thread_id: str) -> int:
    """The thread's runs, once every one has ended."""
    for _ in range(1000):
        runs = await core.runs.list(thread_id, status=None, limit=100, offset=0)
        if all(r.status not in ("pending", "running") for r in runs):
            return len(runs)
        await asyncio.sleep(0.01)
    raise AssertionError("the runs did not end")


async def _thread(core: Gateway) -> str:
    return (await core.threads.create()).thread_id


async def test_a_cron_fires_once_per_tick_and_not_while_disabled(core: Gateway) -> None:
    clock = Clock()
    crons = crons_of(core, clock)
    thread_id = await _thread(core)
    cron = await crons.create({"assistant_id": "slow", "schedule": EVERY_SECOND, "input": QUICK}, thread_id=thread_id)
    assert cron.next_run_date == clock.now.replace(microsecond=0) + timedelta(seconds=1)
    await crons.tick()
    assert await _runs(core, thread_id) == 0, "fired before its time"
    fired = []
    for _ in range(3):
        clock.advance()
        await crons.tick()
        await crons.tick()  # the same moment again: its tick is claimed already
        fired.append(await _runs(core, thread_id))
    assert fired == [1, 2, 3]

    await crons.update(cron.cron_id, {"enabled": False})
    for _ in range(3):
        clock.advance()
        await crons.tick()
    assert await _runs(core, thread_id) == 3, "fired while disabled"

    # Enabled again: from the next tick on, not the ones it missed.
    await crons.update(cron.cron_id, {"enabled": True})
    await crons.tick()
    assert await _runs(core, thread_id) == 3
    clock.advance()
    await crons.tick()
    assert await _runs(core, thread_id) == 4


async def test_a_cron_past_its_end_time_or_created_disabled_does_not_fire(core: Gateway) -> None:
    clock = Clock()
    crons = crons_of(core, clock)
    ended, disabled = await _thread(core), await _thread(core)
    body = {"assistant_id": "slow", "schedule": EVERY_SECOND, "input": QUICK}
    end_time = (clock.now + timedelta(seconds=1.5)).isoformat()
    await crons.create({**body, "end_time": end_time}, thread_id=ended)
    await crons.create({**body, "enabled": False}, thread_id=disabled)
    fired = []
    for _ in range(4):
        clock.advance()
        await crons.tick()
        fired.append((await _runs(core, ended), await _runs(core, disabled)))
    # The one tick before the end time, then none.
    assert fired == [(1, 0), (1, 0), (1, 0), (1, 0)]


async def test_a_stateless_cron_runs_each_tick_on_a_new_thread_kept_or_deleted(
    core: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    crons = crons_of(core, clock)
    body = {"assistant_id": "slow", "schedule": EVERY_SECOND, "input": QUICK}
    kept = await crons.create({**body, "metadata": {"marker": "kept"}, "on_run_completed": "keep"})
    deleted = await crons.create({**body, "metadata": {"marker": "deleted"}})
    with caplog.at_level(logging.INFO, logger="gateway.crons"):
        for _ in range(2):
            clock.advance()
            await crons.tick()
    created = {
        cron_id: [record.args[2] for record in caplog.records if record.args and record.args[0] == cron_id]
        for cron_id in (kept.cron_id, deleted.cron_id)
    }
    # A run, on a thread of its own, per tick of each.
    assert [len(set(threads)) for threads in created.values()] == [2, 2]

    async def ended(thread_id: str) -> bool:
        return all(
            r.status not in ("pending", "running")
            for r in await core.runs.list(thread_id, status=None, limit=10, offset=0)
        )

    for _ in range(1000):
        kept_threads = await core.threads.search(metadata={"marker": "kept"}, limit=100)
        if len(kept_threads) == 2 and all([await ended(t.thread_id) for t in kept_threads]):
            if await core.threads.count(metadata={"marker": "deleted"}) == 0:
                break
        await asyncio.sleep(0.01)
    # Kept: the threads the runs were on, with their runs; deleted with the run (the default).
    assert sorted(t.thread_id for t in kept_threads) == sorted(created[kept.cron_id])
    assert await core.threads.count(metadata={"marker": "deleted"}) == 0


class Overlapping:
    """A storage whose looks for due crons each return once all `lookers` have looked: their
    lists overlap, as the lists of replicas that look at the same moment do."""

    def __init__(self, storage: Storage, lookers: int) -> None:
        self._storage = storage
        self._barrier = asyncio.Barrier(lookers)

    async def due_crons(self, now: datetime, limit: int) -> list[CronRecord]:
        due = await self._storage.due_crons(now, limit)
        await self._barrier.wait()
        return due

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


async def test_each_tick_fires_once_however_many_processes_look(core: Gateway) -> None:
    # Three schedulers that find the same crons due at each tick, as three replicas do: each
    # tick is claimed by one of them, so each cron fires once per tick.
    clock = Clock()
    storage = cast(Storage, Overlapping(core.storage, 3))
    schedulers = [Crons(storage, core.assistants, core.runs, clock=clock) for _ in range(3)]
    threads = [await _thread(core) for _ in range(12)]
    for i, thread_id in enumerate(threads):
        body = {"assistant_id": "slow", "schedule": EVERY_SECOND, "input": QUICK}
        await schedulers[i % 3].create(body, thread_id=thread_id)
    for ticks in (1, 2, 3):
        clock.advance()
        assert await asyncio.gather(*(s.tick() for s in schedulers)) == [12, 12, 12], "the lists did not overlap"
        assert [await _runs(core, t) for t in threads] == [ticks] * 12
