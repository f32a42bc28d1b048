"""The scheduler through the run service, in process on a real sqlite file and the test graphs:
each thread's multitask strategy holds under concurrent creates, every time, and cancels never
half-apply."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway.core.gateway import Gateway
from gateway.shared.errors import Conflict, TooManyRuns, Unavailable
from gateway.shared.records import MultitaskStrategy, RunCreate, RunRecord
from tests.core.conftest import MakeCore

TRIALS = 100
SHORT = {"n": 3, "delay": 0.002}


async def _thread(core: Gateway) -> str:
    return (await core.threads.create()).thread_id


def _slow(thread_id: str, strategy: MultitaskStrategy, **input: Any) -> RunCreate:
    return RunCreate("slow", thread_id=thread_id, input={**SHORT, **input}, multitask_strategy=strategy)


async def _create_at_once(core: Gateway, requests: list[RunCreate]) -> list[RunRecord | BaseException]:
    return await asyncio.gather(*(core.runs.create(r) for r in requests), return_exceptions=True)


async def _ended(core: Gateway, thread_id: str) -> list[str]:
    """The statuses of the thread's runs once every one has ended, oldest first."""
    for _ in range(1000):
        runs = await core.runs.list(thread_id, status=None, limit=100, offset=0)
        if all(r.status not in ("pending", "running") for r in runs):
            return [r.status for r in reversed(runs)]
        await asyncio.sleep(0.01)
    raise AssertionError("the runs did not end")


async def _reject(core: Gateway) -> None:
    thread_id = await _thread(core)
    results = await _create_at_once(core, [_slow(thread_id, "reject") for _ in range(4)])
    assert [type(r) for r in results].count(RunRecord) == 1
    assert all(isinstance(r, (RunRecord, Conflict)) for r in results)
    assert await _ended(core, thread_id) == ["success"]


async def _interrupt(core: Gateway) -> None:
    thread_id = await _thread(core)
    results = await _create_at_once(core, [_slow(thread_id, "interrupt") for _ in range(4)])
    assert all(isinstance(r, RunRecord) for r in results)
    assert await _ended(core, thread_id) == ["interrupted"] * 3 + ["success"]


async def _rollback(core: Gateway) -> None:
    thread_id = await _thread(core)
    results = await _create_at_once(core, [_slow(thread_id, "rollback") for _ in range(4)])
    assert all(isinstance(r, RunRecord) for r in results)
    assert await _ended(core, thread_id) == ["success"]


async def _enqueue(core: Gateway) -> None:
    thread_id = await _thread(core)
    results = await _create_at_once(core, [_slow(thread_id, "enqueue") for _ in range(5)])
    assert [type(r) for r in results].count(RunRecord) == 3  # --max-queued-runs
    assert all(isinstance(r, (RunRecord, TooManyRuns)) for r in results)
    assert await _ended(core, thread_id) == ["success"] * 3


async def test_concurrent_creates_hold_every_strategy_every_time(make_core: MakeCore) -> None:
    async with make_core(max_queued_runs=3) as core:
        # Each trial's strategies on threads of their own, at the same time: a thread's creates
        # race each other, and the other threads' runs besides.
        for _ in range(TRIALS):
            await asyncio.gather(_reject(core), _interrupt(core), _rollback(core), _enqueue(core))


async def test_a_run_cancelled_before_its_task_runs_still_ends(make_core: MakeCore) -> None:
    async with make_core() as core:
        for strategy in ("interrupt", "rollback"):
            thread_id = await _thread(core)
            first = await core.runs.create(_slow(thread_id, "enqueue", n=50, delay=0.01))
            # Its worker has claimed it and made its task, which has not run a step yet.
            await asyncio.sleep(0)
            second = await core.runs.create(_slow(thread_id, strategy))  # type: ignore[arg-type]
            assert json.loads(await core.runs.outcome(thread_id, second.run_id)) == {**SHORT, "ticks": 3}
            assert first.status == "interrupted"


async def test_cancelling_a_cancelled_queued_run_again_changes_nothing(make_core: MakeCore) -> None:
    async with make_core() as core:
        thread_id = await _thread(core)
        active = await core.runs.create(_slow(thread_id, "enqueue", n=100, delay=0.01))
        queued = await core.runs.create(_slow(thread_id, "enqueue"))
        await core.runs.cancel(thread_id, queued.run_id, wait=True)
        assert queued.status == "interrupted"
        # An interrupt now cancels what is unfinished, and is accepted.
        last = await core.runs.create(_slow(thread_id, "interrupt"))
        assert json.loads(await core.runs.outcome(thread_id, last.run_id)) == {**SHORT, "ticks": 3}
        assert active.status == "interrupted"
        assert await _ended(core, thread_id) == ["interrupted", "interrupted", "success"]


async def test_shutdown_refuses_new_runs_and_interrupts_live_ones(make_core: MakeCore) -> None:
    async with make_core() as core:
        thread_id = await _thread(core)
        run = await core.runs.create(_slow(thread_id, "enqueue", n=1000, delay=0.01))
        await asyncio.sleep(0.05)
        await core.drain(0.05)
        assert run.status == "interrupted"
        stored = await core.storage.get_run(run.run_id)
        assert stored is not None and stored.status == "interrupted"
        with pytest.raises(Unavailable) as refused:
            await core.runs.create(_slow(thread_id, "enqueue"))
        assert refused.value.reason == "SHUTTING_DOWN" and refused.value.retry_after


async def _status_once_started(*records: RunRecord) -> list[str]:
    """The statuses of `records` at the moment the first of them leaves `pending`."""
    for _ in range(1000):
        if any(r.status != "pending" for r in records):
            return [r.status for r in records]
        await asyncio.sleep(0.005)
    raise AssertionError("none of the runs started")


async def test_at_the_limit_runs_wait_their_turn_whether_stateless_or_on_a_thread(make_core: MakeCore) -> None:
    async with make_core(max_concurrent_runs=1) as core:
        first = await core.runs.create(RunCreate("slow", input={"n": 20, "delay": 0.01}))
        assert first.status == "running"
        thread_id = await _thread(core)
        on_thread = await core.runs.create(_slow(thread_id, "enqueue"))
        # Stateless, after the run on the thread: no slot, and one waits before it.
        stateless = await core.runs.create(RunCreate("slow", input=SHORT))
        assert (on_thread.status, stateless.status) == ("pending", "pending")
        # The slot goes to the oldest run that waits for one, then to the next.
        assert await _status_once_started(on_thread, stateless) == ["running", "pending"]
        assert json.loads(await core.runs.outcome(None, stateless.run_id)) == {**SHORT, "ticks": 3}
        assert [first.status, on_thread.status, stateless.status] == ["success"] * 3


async def test_stateless_runs_do_not_starve_a_run_on_a_thread(make_core: MakeCore) -> None:
    async with make_core(max_concurrent_runs=2) as core:
        live = [await core.runs.create(RunCreate("slow", input={"n": 5, "delay": 0.01})) for _ in range(2)]
        thread_id = await _thread(core)
        on_thread = await core.runs.create(_slow(thread_id, "enqueue"))
        # Stateless runs keep coming, always more than the slots: the run on the thread still
        # gets the first slot that frees.
        for _ in range(20):
            live.append(await core.runs.create(RunCreate("slow", input={"n": 5, "delay": 0.01})))
            await asyncio.sleep(0.01)
            if on_thread.status != "pending":
                break
        assert on_thread.status != "pending"
        assert sum(1 for r in live if r.status == "running") + (on_thread.status == "running") <= 2
        assert await _ended(core, thread_id) == ["success"]
        for record in live:
            await core.runs.outcome(None, record.run_id)
