"""A search's filter on each backend: as many keys as allowed, of every JSON type, match exactly
the records that hold them all; and on sqlite, whose statements run on the event loop's thread,
a search that runs past its time bound is stopped rather than left to hold the loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.shared.errors import TimedOut
from gateway.shared.limits import MAX_FILTER_KEYS
from gateway.shared.records import AssistantFilter, AssistantRecord, CronFilter, ThreadFilter, ThreadRecord, now_iso
from gateway.shared.util import uuid7
from gateway.storage import SqliteStorage, Storage

# Every JSON type, over as many keys as a filter may have.
_KINDS: list[object] = [None, True, False, 0, 1, -7, 2.5, "", "text", [1, "a"], {"nested": {"x": [None]}}]
WANTED = {f"k{i}": _KINDS[i % len(_KINDS)] for i in range(MAX_FILTER_KEYS)}


def _thread(metadata: dict[str, object]) -> ThreadRecord:
    now = now_iso()
    return ThreadRecord(uuid7(), now, now, now, metadata)


async def test_a_filter_of_as_many_keys_as_allowed_matches_exactly(storage: Storage) -> None:
    match = _thread({**WANTED, "more": "x" * 10_000})
    near = [
        _thread({**WANTED, "k0": "null"}),  # a string, not null
        _thread({**WANTED, "k1": 1}),  # 1, not true
        _thread({**WANTED, "k9": [1]}),  # part of the array
        _thread({k: v for k, v in WANTED.items() if k != f"k{MAX_FILTER_KEYS - 1}"}),
    ]
    for record in (match, *near):
        assert await storage.create_thread(record)
    where = ThreadFilter(metadata=WANTED)
    found = await storage.search_threads(where, limit=10, offset=0, sort_by="created_at", descending=True)
    assert [t.thread_id for t in found] == [match.thread_id]
    assert await storage.count_threads(where) == 1
    assert await storage.count_threads(ThreadFilter(metadata={**WANTED, "more": "x" * 10_000})) == 1
    assert await storage.count_threads(ThreadFilter(metadata={"k2": False, "k3": 0})) == 5
    now = now_iso()
    assistant = AssistantRecord(uuid7(), "g", "a", now, now, {}, {}, dict(WANTED))
    assert await storage.create_assistant(assistant)
    assert await storage.count_assistants(AssistantFilter(metadata=WANTED)) == 1
    assert await storage.count_assistants(AssistantFilter(metadata={**WANTED, "k4": 2})) == 0
    assert await storage.count_crons(CronFilter(metadata=WANTED)) == 0


async def test_a_sqlite_search_past_its_time_bound_is_stopped(tmp_path: Path) -> None:
    storage = SqliteStorage(str(tmp_path / "bounded.sqlite"), search_seconds=0)
    await storage.setup()
    try:
        for _ in range(300):
            await storage.create_thread(_thread({f"k{j}": j for j in range(100)}))
        where = ThreadFilter(metadata={"k1": 1})
        with pytest.raises(TimedOut, match="the search ran longer than 0 s and was stopped"):
            await storage.count_threads(where)
        with pytest.raises(TimedOut):
            await storage.search_threads(where, limit=10, offset=0, sort_by="created_at", descending=True)
        # The connection is left as it was: every other statement runs unbounded.
        assert len(await storage.runs_with_status(("pending",))) == 0
        assert await storage.get_thread(uuid7()) is None
    finally:
        await storage.close()
    storage = SqliteStorage(str(tmp_path / "bounded.sqlite"))
    await storage.setup()
    try:
        assert await storage.count_threads(ThreadFilter(metadata={"k1": 1})) == 300
    finally:
        await storage.close()
