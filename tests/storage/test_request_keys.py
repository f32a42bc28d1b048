"""Idempotent creation's keys on every backend: stored in the transaction that makes the run or
thread, one per (caller, request_id) however many processes race for it, a repeat admits
nothing, and keys past their window are free again and pruned."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from gateway.shared.errors import RequestIdReused
from gateway.shared.records import RequestKey, RunRecord, ThreadRecord, now_iso
from gateway.shared.util import uuid7
from gateway.storage import Storage
from gateway.storage.base import Repeated
from tests.storage.test_conformance import run, thread


def key(request_id: str, body: str = "body", caller: str = "", window: float = 60) -> RequestKey:
    return RequestKey(caller, request_id, body, window)


async def admit(storage: Storage, record: RunRecord, request_key: RequestKey, *, new_thread: bool = False) -> None:
    await storage.admit_run(
        record,
        b"{}",
        if_not_exists="create",
        thread_metadata={"graph_id": "g"},
        max_unfinished=100,
        lease_seconds=30,
        new_thread=new_thread,
        request_key=request_key,
    )


async def test_a_repeated_run_key_admits_nothing_and_names_the_first_run(storage: Storage) -> None:
    t = thread()
    await storage.create_thread(t)
    request_id = str(uuid4())
    first = run(t.thread_id)
    await admit(storage, first, key(request_id))
    again = run(t.thread_id)
    with pytest.raises(Repeated) as repeat:
        await admit(storage, again, key(request_id))
    assert (repeat.value.resource_id, repeat.value.thread_id) == (first.run_id, t.thread_id)
    assert await storage.get_run(again.run_id) is None
    assert [r.run_id for r in await storage.unfinished_runs(t.thread_id)] == [first.run_id]
    # Another body under the same id: refused, nothing stored.
    with pytest.raises(RequestIdReused, match=f"request_id {request_id}"):
        await admit(storage, run(t.thread_id), key(request_id, body="other"))
    # Another caller's id is its own.
    other = run(t.thread_id)
    await admit(storage, other, key(request_id, caller="ann"))
    assert await storage.get_run(other.run_id) is not None


async def test_a_stateless_run_stores_its_key_with_its_new_thread(storage: Storage) -> None:
    request_id = str(uuid4())
    first = run(uuid7())
    await admit(storage, first, key(request_id), new_thread=True)
    with pytest.raises(Repeated) as repeat:
        await admit(storage, run(uuid7()), key(request_id), new_thread=True)
    assert (repeat.value.resource_id, repeat.value.thread_id) == (first.run_id, first.thread_id)


async def test_concurrent_repeats_admit_one_run(storage: Storage) -> None:
    for _ in range(5):
        t = thread()
        await storage.create_thread(t)
        request_id = str(uuid4())
        records = [run(t.thread_id) for _ in range(10)]
        results = await asyncio.gather(
            *(admit(storage, record, key(request_id)) for record in records), return_exceptions=True
        )
        admitted = [r.run_id for r, result in zip(records, results, strict=True) if result is None]
        assert len(admitted) == 1
        assert all(isinstance(r, Repeated) and r.resource_id == admitted[0] for r in results if r is not None)
        assert [r.run_id for r in await storage.unfinished_runs(t.thread_id)] == admitted


async def test_a_thread_key_is_kept_only_with_the_thread_it_made(storage: Storage) -> None:
    request_id = str(uuid4())
    first = thread()
    assert await storage.create_thread(first, request_key=key(request_id))
    with pytest.raises(Repeated) as repeat:
        await storage.create_thread(thread(), request_key=key(request_id))
    assert repeat.value.thread_id == first.thread_id
    with pytest.raises(RequestIdReused):
        await storage.create_thread(thread(), request_key=key(request_id, body="other"))
    # A thread id that exists makes nothing, and keeps no key: the id can be used again.
    unused = str(uuid4())
    now = now_iso()
    assert not await storage.create_thread(ThreadRecord(first.thread_id, now, now, now, {}), request_key=key(unused))
    second = thread()
    assert await storage.create_thread(second, request_key=key(unused))
    raced = str(uuid4())
    results = await asyncio.gather(
        *(storage.create_thread(thread(), request_key=key(raced)) for _ in range(8)),
        return_exceptions=True,
    )
    assert sum(r is True for r in results) == 1
    assert all(isinstance(r, Repeated) for r in results if r is not True)


async def test_keys_past_their_window_are_free_again_and_pruned(storage: Storage) -> None:
    t = thread()
    await storage.create_thread(t)
    request_id, kept = str(uuid4()), str(uuid4())
    await admit(storage, run(t.thread_id), key(request_id, window=0.05))
    await admit(storage, run(t.thread_id), key(kept, window=60))
    await asyncio.sleep(0.2)
    # Expired, not yet pruned: the id makes a new run, with a body of its own.
    later = run(t.thread_id)
    await admit(storage, later, key(request_id, body="other", window=0.05))
    assert await storage.get_run(later.run_id) is not None
    await asyncio.sleep(0.2)
    assert await storage.prune_request_keys() == 1
    assert await storage.prune_request_keys() == 0
    with pytest.raises(Repeated):
        await admit(storage, run(t.thread_id), key(kept, window=60))
