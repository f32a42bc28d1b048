"""The Postgres backend's pool lives on an event loop of its own, in a thread: every operation
(the storage's, LangGraph's checkpointer's and the store's) runs there, whichever loop calls it,
and a caller that gives up takes its query with it, leaving the pool whole."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langgraph.graph import StateGraph
from typing_extensions import TypedDict

from gateway.records import ThreadRecord, now_iso
from gateway.storage.postgres import PostgresStorage
from gateway.storage.store import Store, StoreConfig
from tests._backends import postgres_database


@pytest.fixture
async def storage() -> AsyncIterator[PostgresStorage]:
    with postgres_database() as url:
        backend = PostgresStorage(url, max_size=2)
        await backend.setup()
        try:
            yield backend
        finally:
            await backend.close()


def _record_connection_threads(storage: PostgresStorage) -> list[str]:
    """The name of the thread each connection is taken from the pool on, from now on."""
    names: list[str] = []
    pool: Any = storage.pool
    getconn = pool.getconn

    async def recording(*args: Any, **kwargs: Any) -> Any:
        names.append(threading.current_thread().name)
        return await getconn(*args, **kwargs)

    pool.getconn = recording
    return names


class _State(TypedDict, total=False):
    n: int


async def _add(state: _State) -> _State:
    return {"n": state.get("n", 0) + 1}


async def test_every_operation_runs_on_the_pools_own_thread(storage: PostgresStorage) -> None:
    names = _record_connection_threads(storage)
    assert threading.current_thread().name != "postgres-io"
    now = now_iso()
    thread_id = "00000000-0000-4000-8000-000000000001"
    assert await storage.create_thread(ThreadRecord(thread_id, now, now, now, {"k": "v"}))
    found = await storage.get_thread(thread_id)
    assert found is not None and found.metadata == {"k": "v"}
    storage_calls = len(names)

    # LangGraph's checkpointer, as a run on a thread uses it.
    graph = (
        StateGraph(_State).add_node("add", _add).add_edge("__start__", "add").compile(checkpointer=storage.checkpointer)
    )
    config: Any = {"configurable": {"thread_id": thread_id}}
    assert await graph.ainvoke({"n": 1}, config) == {"n": 2}
    assert (await graph.aget_state(config)).values == {"n": 2}
    assert [c async for c in storage.checkpointer.alist(config, limit=1)]
    checkpointer_calls = len(names) - storage_calls

    # The store, batched on the caller's loop, run on the pool's.
    store = Store(StoreConfig())
    await store.open(storage)
    try:
        await store.store.aput(("ns",), "key", {"v": 1})
        item = await store.store.aget(("ns",), "key")
        assert item is not None and item.value == {"v": 1}
    finally:
        await store.close()
    store_calls = len(names) - storage_calls - checkpointer_calls

    assert storage_calls >= 2 and checkpointer_calls >= 3 and store_calls >= 2
    assert set(names) == {"postgres-io"}


async def test_a_cancelled_call_cancels_its_query_and_leaves_the_pool_whole(storage: PostgresStorage) -> None:
    # Two connections, four callers each holding one for 10 s, all given up after 0.3 s.
    sleeps = [asyncio.ensure_future(storage.io.run(_sleep(storage, 10))) for _ in range(4)]
    done, pending = await asyncio.wait(sleeps, timeout=0.3)
    assert not done
    for call in pending:
        call.cancel()
    await asyncio.gather(*pending, return_exceptions=True)

    # The queries were cancelled, not left running: both connections serve at once.
    async with asyncio.timeout(5):
        await asyncio.gather(storage.ping(), storage.ping(), storage.count_runs(("pending",)))
        stats = await storage.io.run(_stats(storage))
    assert stats.get("requests_waiting", 0) == 0
    assert stats["pool_size"] - stats["pool_available"] == 0


async def _sleep(storage: PostgresStorage, seconds: float) -> None:
    async with storage.pool.connection() as conn:
        await conn.execute("SELECT pg_sleep(%s)", (seconds,))


async def _stats(storage: PostgresStorage) -> dict[str, int]:
    return storage.pool.get_stats()


async def test_close_stops_the_pools_thread() -> None:
    with postgres_database() as url:
        backend = PostgresStorage(url)
        await backend.setup()
        assert any(t.name == "postgres-io" for t in threading.enumerate())
        await backend.close()
    assert not any(t.name == "postgres-io" for t in threading.enumerate())


async def test_a_server_that_cannot_be_reached_is_one_error_and_no_thread_is_left() -> None:
    backend = PostgresStorage("postgresql://postgres@127.0.0.1:1/test")
    with pytest.raises(Exception, match="cannot connect to Postgres at 127.0.0.1:1/test"):
        await backend.setup()
    assert not any(t.name == "postgres-io" for t in threading.enumerate())
