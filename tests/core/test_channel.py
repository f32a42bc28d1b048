"""The per-run fan-out: order, replay, backpressure and the slow-subscriber policy."""

from __future__ import annotations

import asyncio

import pytest

from gateway.core.channel import RunChannel
from gateway.errors import SubscriberTooSlow


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
