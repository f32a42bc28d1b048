"""The Postgres backend's pool lives on an event loop of its own, in a thread: every operation
(the storage's, LangGraph's checkpointer's and the store's) runs there, whichever loop calls it,
and a caller that gives up takes its query with it, leaving the pool whole. The runs' own work
holds at most three quarters of the pool, so that requests find a connection."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from langgraph.graph import StateGraph
from typing_extensions import TypedDict

from gateway.config.store import StoreConfig
from gateway.shared.records import RunRecord, ThreadChange, ThreadRecord, now_iso
from gateway.storage.postgres import PostgresStorage
from gateway.storage.store import Store
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

    # The queries were cancelled, not left running for their 10 s: both connections serve at
    # once, and are back in the pool (each once the pool has reset it, in the background).
    async with asyncio.timeout(5):
        await asyncio.gather(storage.ping(), storage.ping(), storage.count_runs(("pending",)))
        while True:
            stats = await storage.io.run(_stats(storage))
            if not stats.get("requests_waiting", 0) and stats["pool_size"] == stats["pool_available"]:
                break
            await asyncio.sleep(0.05)


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


async def _waiting_on_locks(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def _until_waiting_on_locks(url: str, count: int) -> None:
    for _ in range(200):
        if await _waiting_on_locks(url) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} statements waited on a lock after 10 s")


async def test_the_runs_own_work_leaves_a_quarter_of_the_pool_to_requests() -> None:
    with postgres_database() as url:
        backend = PostgresStorage(url, max_size=4)
        await backend.setup()
        try:
            assert backend.runs_lane.size == 3
            now = now_iso()
            busy = "00000000-0000-4000-8000-00000000000b"
            assert await backend.create_thread(ThreadRecord(busy, now, now, now, {}))
            async with await psycopg.AsyncConnection.connect(url) as holder:
                # Another client holds the thread's row: five runs' ends on it wait for the
                # lock, three of them on connections of the pool, two for the lane.
                await holder.execute("SELECT 1 FROM gw_threads WHERE thread_id = %s FOR UPDATE", (busy,))
                ends = [
                    asyncio.ensure_future(
                        backend.finish_run(f"00000000-0000-4000-8000-00000000010{i}", busy, "success", ThreadChange())
                    )
                    for i in range(5)
                ]
                await _until_waiting_on_locks(url, 3)
                # A checkpoint read is the runs' work too: it waits for the lane.
                read = asyncio.ensure_future(backend.checkpointer.aget_tuple({"configurable": {"thread_id": busy}}))
                done, _ = await asyncio.wait([read, *ends], timeout=0.5)
                assert not done

                # A request's statements find the fourth connection meanwhile (without the
                # lane, the ends take it and the admission waits out the pool's 5 s).
                fresh = "00000000-0000-4000-8000-00000000000f"
                run = RunRecord(
                    "00000000-0000-4000-8000-000000000201", fresh, "a", now, now, "pending", {}, "reject", {}
                )
                async with asyncio.timeout(4):
                    admission = await backend.admit_run(
                        run, b"{}", if_not_exists="create", thread_metadata={}, max_unfinished=10, new_thread=True
                    )
                    assert admission.cancel == []
                    assert (await backend.get_thread(fresh)) is not None
                    assert (await backend.get_run(run.run_id)) is not None
                assert await _waiting_on_locks(url) == 3
                await holder.commit()

            # Released: every end goes through (none of those runs exists) and the read answers.
            async with asyncio.timeout(10):
                assert await asyncio.gather(*ends) == [False] * 5
                assert await read is None
        finally:
            await backend.close()
