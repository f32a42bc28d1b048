"""The signals between the processes of a scale-out deployment, over a real Redis: a burst of
signals arrives whole and in the order it was published, what was published just before
closing still goes out, and a Redis that cannot be reached loses the hints, not the caller."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.storage.redis_backend import RedisSignals, connect
from gateway.storage.signals import SignalKind
from tests._backends import REDIS, redis_prefix


class _Received:
    def __init__(self) -> None:
        self.signals: list[tuple[SignalKind, dict[str, Any]]] = []
        self.changed = asyncio.Event()

    def __call__(self, kind: SignalKind, payload: dict[str, Any]) -> None:
        self.signals.append((kind, payload))
        self.changed.set()

    async def until(self, count: int) -> list[tuple[SignalKind, dict[str, Any]]]:
        async with asyncio.timeout(10):
            while len(self.signals) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.signals


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    with redis_prefix() as prefix:
        yield prefix


@pytest.fixture
async def clients() -> AsyncIterator[list[aioredis.Redis]]:
    """The Redis clients a test made (a process's signals use the client it is given)."""
    made: list[aioredis.Redis] = []
    yield made
    for client in made:
        await client.aclose()


async def _started(prefix: str, clients: list[aioredis.Redis]) -> RedisSignals:
    clients.append(connect(REDIS))
    signals = RedisSignals(clients[-1], prefix)
    await signals.start()
    return signals


async def test_a_burst_arrives_whole_and_in_order(prefix: str, clients: list[aioredis.Redis]) -> None:
    publisher, listener = await _started(prefix, clients), await _started(prefix, clients)
    received = _Received()
    listener.subscribe(received)
    try:
        # Two publishers on the same process, interleaved: each one's signals keep their order.
        async def burst(name: str) -> None:
            for i in range(150):
                await publisher.publish("wake", {"from": name, "i": i})
                if i % 10 == 0:
                    await asyncio.sleep(0)

        await asyncio.gather(burst("a"), burst("b"))
        signals = await received.until(300)
        assert len(signals) == 300
        for name in ("a", "b"):
            assert [p["i"] for k, p in signals if p["from"] == name] == list(range(150))
        assert {k for k, _ in signals} == {"wake"}
    finally:
        await publisher.close()
        await listener.close()


async def test_what_was_published_before_closing_goes_out(prefix: str, clients: list[aioredis.Redis]) -> None:
    listener = await _started(prefix, clients)
    received = _Received()
    listener.subscribe(received)
    try:
        publisher = await _started(prefix, clients)
        for i in range(50):
            await publisher.publish("cancel", {"run_id": f"run-{i}", "action": "interrupt"})
        await publisher.close()
        signals = await received.until(50)
        assert [p["run_id"] for _, p in signals] == [f"run-{i}" for i in range(50)]
    finally:
        await listener.close()


async def test_an_unreachable_redis_loses_the_signal_not_the_caller(
    prefix: str, clients: list[aioredis.Redis], caplog: pytest.LogCaptureFixture
) -> None:
    clients.append(connect("redis://127.0.0.1:1"))
    signals = RedisSignals(clients[-1], prefix)
    with caplog.at_level(logging.WARNING, logger="gateway.redis"):
        await signals.publish("admitted", {"thread_id": "t", "run_id": "r"})
        await signals.publish("wake", {})
        await signals.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "gateway.redis"]
    assert any("could not publish 2 signals (admitted, wake)" in w for w in warnings), warnings
