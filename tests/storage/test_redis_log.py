"""The Redis event log of the scale-out deployment, against a real Redis: batches appended in
one command, read back in order after any id, a batch written again adding nothing, the
retention set on every write, and a Redis that lost its scripts (a restart) still written to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gateway.shared.errors import Unavailable
from gateway.shared.records import Event
from gateway.shared.util import run_base_ms, uuid7
from gateway.storage.redis_backend import RedisEventLog, connect
from tests._backends import REDIS, redis_prefix


@pytest.fixture
async def log() -> AsyncIterator[tuple[RedisEventLog, aioredis.Redis]]:
    with redis_prefix() as prefix:
        client = connect(REDIS)
        events = RedisEventLog(client, REDIS, prefix, retention=120)
        await events.start()
        try:
            yield events, client
        finally:
            await events.close()
            await client.aclose()


def _events(first: int, last: int) -> list[Event]:
    return [Event(i, "custom", ("sub:1", "inner") if i % 2 else (), b'{"i":%d}' % i) for i in range(first, last + 1)]


async def test_batches_read_back_in_order_with_their_ids(log: tuple[RedisEventLog, aioredis.Redis]) -> None:
    events, client = log
    run_id = uuid7()
    await events.append_events(run_id, _events(1, 3))
    await events.append_events(run_id, _events(3, 600))  # event 3 again: written once
    assert await events.read_events(run_id, 0, 1000) == _events(1, 600)
    assert await events.read_events(run_id, 598, 10) == _events(599, 600)
    assert await events.last_seq(run_id) == 600
    ids = [entry_id for entry_id, _ in await client.xrange(events.key(run_id), count=2)]
    assert ids == [f"{run_base_ms(run_id)}-1".encode(), f"{run_base_ms(run_id)}-2".encode()]
    assert 0 < await client.ttl(events.key(run_id)) <= 120


async def test_a_redis_that_lost_its_scripts_is_written_to(log: tuple[RedisEventLog, aioredis.Redis]) -> None:
    events, client = log
    run_id = uuid7()
    await events.append_events(run_id, _events(1, 2))
    await client.script_flush()
    await events.append_events(run_id, _events(3, 4))
    assert await events.read_events(run_id, 0, 10) == _events(1, 4)


async def test_a_reader_waiting_wakes_on_an_append(log: tuple[RedisEventLog, aioredis.Redis]) -> None:
    events, _ = log
    run_id = uuid7()
    waiting = asyncio.create_task(events.wait_events(run_id, 0, 10))
    await asyncio.sleep(0.1)
    await events.append_events(run_id, _events(1, 1))
    assert await asyncio.wait_for(waiting, 5) is True


async def test_an_unreachable_redis_is_unavailable() -> None:
    client = connect("redis://127.0.0.1:1")
    events = RedisEventLog(client, "redis://127.0.0.1:1", "unreachable:", retention=60)
    with pytest.raises(Unavailable, match="Redis is unreachable"):
        await events.append_events(uuid7(), _events(1, 1))
    await client.aclose()


async def test_runs_appending_at_once_each_get_their_own_events_in_order(
    log: tuple[RedisEventLog, aioredis.Redis],
) -> None:
    events, _ = log
    run_ids = [uuid7() for _ in range(20)]

    async def write(run_id: str) -> None:
        for first in (1, 4, 7):  # batches one after the other, as a run's writer sends them
            await events.append_events(run_id, _events(first, first + 2))

    await asyncio.gather(*(write(run_id) for run_id in run_ids))
    for run_id in run_ids:
        assert await events.read_events(run_id, 0, 100) == _events(1, 9)
