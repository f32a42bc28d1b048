"""Thread streams in process: a subscriber follows every run of its thread with bounded memory
and tasks, however many runs and state updates go by."""

from __future__ import annotations

import asyncio

import pytest

from gateway.core.gateway import Gateway
from gateway.shared.errors import SubscriberTooSlow
from gateway.shared.records import RunCreate
from tests.core.conftest import MakeCore


def _followers(core: Gateway, thread_id: str) -> list:  # type: ignore[type-arg]
    return list(core.thread_streams._followers.get(thread_id, ()))


async def _follow_ends(core: Gateway, thread_id: str, ends: list[str]) -> asyncio.Future[None]:
    """A subscriber of the thread's lifecycle, adding the id of each run that ends to `ends`."""

    async def read() -> None:
        async for batch in core.thread_streams.subscribe(thread_id, modes=frozenset({"lifecycle"})):
            ends.extend(e.run_id for e in batch if b"run_done" in e.data)  # type: ignore[misc]

    reader = asyncio.ensure_future(read())
    await asyncio.sleep(0.05)
    return reader


async def test_a_subscriber_follows_each_run_and_then_lets_it_go(make_core: MakeCore) -> None:
    async with make_core() as core:
        thread_id = (await core.threads.create()).thread_id
        ends: list[str] = []
        reader = await _follow_ends(core, thread_id, ends)
        for _ in range(30):
            run = await core.runs.create(RunCreate("agent", thread_id=thread_id, input={"topic": "x"}))
            await core.runs.outcome(thread_id, run.run_id)
        for _ in range(100):
            if len(ends) == 30:
                break
            await asyncio.sleep(0.01)
        assert len(ends) == 30
        (follower,) = _followers(core, thread_id)
        # Thirty runs went by: none is still followed, and no reader task is left.
        assert follower.following == set() and follower.tasks == set()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        assert _followers(core, thread_id) == []


async def test_a_subscriber_that_stops_reading_is_dropped_not_buffered(make_core: MakeCore) -> None:
    async with make_core() as core:
        thread_id = (await core.threads.create()).thread_id
        stream = core.thread_streams.subscribe(thread_id, modes=frozenset({"state_update"}))
        # Subscribed, then never read again while the thread's state changes many times.
        first = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0.05)
        await core.thread_streams.state_updated(thread_id, {"values": {"i": 0}})
        assert len(await first) == 1
        for i in range(1, 1000):
            await core.thread_streams.state_updated(thread_id, {"values": {"i": i}})
        await asyncio.sleep(0.05)  # the signals are delivered
        (follower,) = _followers(core, thread_id)
        assert follower.queue.qsize() <= 64 and not follower.tasks
        with pytest.raises(SubscriberTooSlow):
            async for _ in stream:
                pass
        assert _followers(core, thread_id) == []


async def test_a_run_that_ends_without_its_end_event_still_reaches_subscribers_as_done(make_core: MakeCore) -> None:
    """A run admitted elsewhere whose events this process never reads (expired, rolled back, or
    its `end` written after the run was recorded as over) still ends for its subscribers."""
    async with make_core() as core:
        thread_id = (await core.threads.create()).thread_id
        done: list[str] = []
        reader = await _follow_ends(core, thread_id, done)
        gone = "1f0c0b6e-0000-7000-8000-000000000000"
        await core.signals.publish("admitted", {"thread_id": thread_id, "run_id": gone})
        for _ in range(200):
            if done:
                break
            await asyncio.sleep(0.01)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        assert done == [gone]
        assert _followers(core, thread_id) == []


async def test_a_run_created_once_subscribe_has_returned_is_followed_before_the_first_read(
    make_core: MakeCore,
) -> None:
    # What a client has once the stream's headers (or the gRPC `subscribed` metadata) came: a
    # run it creates then is on the stream, however late the batches are first read.
    async with make_core() as core:
        thread_id = (await core.threads.create()).thread_id
        stream = core.thread_streams.subscribe(thread_id, modes=frozenset({"lifecycle"}))
        run = await core.runs.create(RunCreate("agent", thread_id=thread_id, input={"topic": "x"}))
        await core.runs.outcome(thread_id, run.run_id)
        await asyncio.sleep(0.05)  # the admission's signal is delivered
        seen: list[str] = []
        async with asyncio.timeout(10):
            async for batch in stream:
                seen.extend(e.data.decode() for e in batch)
                if any("run_done" in data for data in seen):
                    break
        assert any(run.run_id in data for data in seen)
        await stream.aclose()  # type: ignore[attr-defined]
        assert _followers(core, thread_id) == []


async def test_a_subscription_never_read_leaves_its_thread_when_dropped(make_core: MakeCore) -> None:
    async with make_core() as core:
        thread_id = (await core.threads.create()).thread_id
        stream = core.thread_streams.subscribe(thread_id)
        assert len(_followers(core, thread_id)) == 1
        del stream
        assert _followers(core, thread_id) == []
