"""The per-run fan-out: order, replay, backpressure and the slow-subscriber policy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from gateway.core.channel import RunChannel
from gateway.shared.errors import SubscriberTooSlow
from gateway.shared.records import Event


async def collect(channel: RunChannel, after: int | None = 0) -> list[int]:
    return [e.seq async for batch in channel.subscribe(after) for e in batch]


async def test_subscribers_see_every_event_in_order() -> None:
    channel = RunChannel("r", capacity=8)
    readers = [asyncio.create_task(collect(channel)) for _ in range(3)]
    await asyncio.sleep(0)
    for i in range(100):
        channel.publish("custom", (), b"%d" % i)
        await channel.wait_writable()
    channel.close()
    assert [await r for r in readers] == [list(range(1, 101))] * 3


async def test_replay_after_a_seq_and_live_only() -> None:
    channel = RunChannel("r")
    for i in range(5):
        channel.publish("custom", (), b"%d" % i)
    live = asyncio.create_task(collect(channel, after=None))
    await asyncio.sleep(0)
    channel.publish("custom", (), b"5")
    channel.close()
    assert await collect(channel, after=3) == [4, 5, 6]
    assert await collect(channel, after=0) == [1, 2, 3, 4, 5, 6]
    assert await live == [6]


async def test_producer_waits_for_a_slow_subscriber_instead_of_buffering() -> None:
    channel = RunChannel("r", capacity=4, stall_timeout=5)
    produced = 0

    async def produce() -> None:
        nonlocal produced
        for i in range(20):
            channel.publish("custom", (), b"%d" % i)
            produced += 1
            await channel.wait_writable()
        channel.close()

    sub = channel.subscribe(0)
    # Attach the subscriber before the producer starts, as a stream does.
    first = asyncio.ensure_future(anext(sub))
    await asyncio.sleep(0)
    producer = asyncio.create_task(produce())
    await asyncio.sleep(0.05)
    taken = [e.seq for e in await first]
    # The subscriber took one batch and stopped reading: the producer is held one buffer
    # ahead of it, and memory with it.
    assert produced == len(taken) + channel.capacity + 1
    assert len(channel._buffer) <= channel.capacity + 1
    seen = taken + [e.seq async for batch in sub for e in batch]
    await producer
    assert seen == list(range(1, 21))


async def test_a_stuck_subscriber_is_dropped_after_the_stall_timeout() -> None:
    channel = RunChannel("r", capacity=2, stall_timeout=0.05)
    stuck = channel.subscribe(0)
    healthy = asyncio.create_task(collect(channel))
    channel.publish("custom", (), b"0")
    await asyncio.sleep(0)
    assert [e.seq for e in await anext(stuck)] == [1]
    for i in range(10):
        channel.publish("custom", (), b"%d" % i)
        await channel.wait_writable()
    channel.close()
    assert await healthy == list(range(1, 12))
    with pytest.raises(SubscriberTooSlow):
        async for _ in stuck:
            pass


async def _settle() -> None:
    # Turns enough for a subscriber that was woken to take what is there.
    for _ in range(5):
        await asyncio.sleep(0)


async def _paced_after_one(**options: Any) -> tuple[RunChannel, AsyncIterator[Sequence[Event]]]:
    """A channel and a paced subscriber that has just taken the first event (seq 1)."""
    channel = RunChannel("r", **options)
    sub = channel.subscribe(None, paced=True)
    first = asyncio.ensure_future(anext(sub))
    await _settle()
    channel.publish("custom", (), b"0")
    # The first event after a quiet spell goes at once.
    assert [e.seq for e in await asyncio.wait_for(first, 5)] == [1]
    return channel, sub


async def _publish_and_settle(channel: RunChannel, seqs: range) -> None:
    for i in seqs:
        channel.publish("custom", (), b"%d" % i)
        await _settle()


async def test_a_lingering_subscriber_takes_what_came_meanwhile_in_one_batch() -> None:
    channel, sub = await _paced_after_one(linger=60)
    nxt = asyncio.ensure_future(anext(sub))
    await _publish_and_settle(channel, range(1, 4))
    # Within the linger, what comes waits for more.
    assert not nxt.done()
    channel.close()
    # The run's end does not wait: all that came meanwhile, in one batch.
    assert [e.seq for e in await asyncio.wait_for(nxt, 5)] == [2, 3, 4]
    with pytest.raises(StopAsyncIteration):
        await anext(sub)


async def test_a_runs_end_event_ends_the_linger_before_the_channel_closes() -> None:
    # A run's writer may still write its log after `end`, before it closes the channel.
    channel, sub = await _paced_after_one(linger=60)
    channel.publish("custom", (), b"1")
    channel.publish("end", (), b'{"status":"success"}')
    assert [e.name for e in await asyncio.wait_for(anext(sub), 5)] == ["custom", "end"]
    channel.close()


async def test_the_linger_ends_when_it_has_passed() -> None:
    channel, sub = await _paced_after_one(linger=0.05)
    channel.publish("custom", (), b"1")
    assert [e.seq for e in await asyncio.wait_for(anext(sub), 5)] == [2]
    channel.close()


async def test_a_full_ring_ends_the_linger() -> None:
    channel, sub = await _paced_after_one(capacity=4, linger=60)
    nxt = asyncio.ensure_future(anext(sub))
    await _publish_and_settle(channel, range(1, 5))
    assert not nxt.done()
    # One more than the ring holds: the run would wait for the subscriber, which goes now.
    channel.publish("custom", (), b"5")
    assert channel.full
    assert [e.seq for e in await asyncio.wait_for(nxt, 5)] == [2, 3, 4, 5, 6]
    await asyncio.wait_for(channel.wait_writable(), 5)
    channel.close()


async def test_a_subscriber_that_is_not_paced_takes_each_event_as_it_comes() -> None:
    # As the thread protocol's subscriptions, which share a connection, beside a run's stream.
    channel = RunChannel("r", linger=60)
    paced = channel.subscribe(None, paced=True)
    eager = channel.subscribe(None)
    firsts = asyncio.ensure_future(anext(paced)), asyncio.ensure_future(anext(eager))
    await _settle()
    channel.publish("custom", (), b"0")
    assert [[e.seq for e in await asyncio.wait_for(f, 5)] for f in firsts] == [[1], [1]]
    held = asyncio.ensure_future(anext(paced))
    for i in range(1, 4):
        nxt = asyncio.ensure_future(anext(eager))
        await _settle()
        channel.publish("custom", (), b"%d" % i)
        assert [e.seq for e in await asyncio.wait_for(nxt, 5)] == [i + 1]
    assert not held.done()
    channel.close()
    assert [e.seq for e in await asyncio.wait_for(held, 5)] == [2, 3, 4]
