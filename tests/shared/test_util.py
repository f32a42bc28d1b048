"""gateway.shared.util.within: a wait with a time limit that never loses a cancel. On Python 3.11
`asyncio.wait_for` does lose one that arrives as the awaited thing completes, and a thread
protocol stream whose client had left stayed on its thread that way (its poll for other
processes' runs waited with `wait_for`)."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from gateway.shared.util import cancel_for_good, within

ROOT = Path(__file__).resolve().parents[2]


async def _follow(wake: asyncio.Event, woken: list[int]) -> None:
    """A loop that waits for a wake or a poll interval, as a thread's stream does."""
    while True:
        wake.clear()
        try:
            await within(5, wake.wait())
        except TimeoutError:
            pass
        woken.append(1)


async def test_a_cancel_that_comes_as_the_wait_ends_is_kept() -> None:
    wake = asyncio.Event()
    woken: list[int] = []
    task = asyncio.create_task(_follow(wake, woken))
    await asyncio.sleep(0.01)
    wake.set()
    await asyncio.sleep(0)  # the wait has ended; the task has not run on yet
    task.cancel()
    # Were the cancel lost, the loop would go on waiting: the test fails after 10 s, not never.
    done, _ = await asyncio.wait({task}, timeout=10)
    assert task in done and task.cancelled()


async def test_the_value_or_a_timeout() -> None:
    assert await within(1, asyncio.sleep(0, "done")) == "done"
    assert await within(None, asyncio.sleep(0, "no limit")) == "no limit"
    with pytest.raises(TimeoutError):
        await within(0.01, asyncio.Event().wait())


def test_the_gateway_does_not_use_asyncio_wait_for() -> None:
    used = []
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "wait_for"
                and getattr(node.value, "id", "") == "asyncio"
            ):
                used.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert used == [], f"asyncio.wait_for loses cancels on Python 3.11; use gateway.shared.util.within: {used}"


async def test_a_task_that_loses_a_cancel_is_cancelled_again_until_it_ends() -> None:
    lost = []

    async def loses_one() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            lost.append(1)  # as a library that loses it would: on it goes
        await asyncio.sleep(10)

    task = asyncio.create_task(loses_one())
    await asyncio.sleep(0)
    cancel_for_good([task], every=0.01)
    done, _ = await asyncio.wait({task}, timeout=10)
    assert task in done and task.cancelled() and lost == [1]
