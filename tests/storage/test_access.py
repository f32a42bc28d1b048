"""Auth filters (AccessFilter) applied inside each backend's queries: a record the caller's filter
does not allow is never read, listed, counted, changed or deleted, and every backend agrees
with `AccessFilter.allows`, the reference semantics."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.shared.errors import NotFound
from gateway.shared.records import (
    AccessFilter,
    AssistantFilter,
    AssistantRecord,
    Contains,
    Equals,
    RunRecord,
    ThreadChange,
    ThreadFilter,
    ThreadRecord,
    now_iso,
)
from gateway.shared.util import uuid7
from gateway.storage import Storage

ANN = AccessFilter((Equals("owner", "ann"),))
BOB = AccessFilter((Equals("owner", "bob"),))


def thread(metadata: dict[str, Any]) -> ThreadRecord:
    now = now_iso()
    return ThreadRecord(uuid7(), now, now, now, metadata)


def run(thread_id: str) -> RunRecord:
    now = now_iso()
    return RunRecord(uuid7(), thread_id, "a", now, now, "pending", {}, "enqueue", {"resumable": False})


async def admit(storage: Storage, record: RunRecord, **kw: Any) -> None:
    await storage.admit_run(
        record, b"{}", if_not_exists="reject", thread_metadata={"graph_id": "g"}, max_unfinished=100, **kw
    )


async def test_a_thread_outside_the_filter_is_not_read_changed_or_deleted(storage: Storage) -> None:
    mine = thread({"owner": "ann"})
    await storage.create_thread(mine)
    assert await storage.get_thread(mine.thread_id, access=ANN) is not None
    assert await storage.get_thread(mine.thread_id, access=BOB) is None
    assert not await storage.update_thread(mine.thread_id, ThreadChange(metadata={"owner": "bob"}), access=BOB)
    assert await storage.delete_thread(mine.thread_id, access=BOB) is None
    stored = await storage.get_thread(mine.thread_id)
    assert stored is not None and stored.metadata == {"owner": "ann"}
    assert await storage.update_thread(mine.thread_id, ThreadChange(metadata={"owner": "ann", "x": 1}), access=ANN)
    assert await storage.delete_thread(mine.thread_id, access=ANN) == []
    assert await storage.get_thread(mine.thread_id) is None


async def test_search_and_count_see_only_what_the_filter_allows(storage: Storage) -> None:
    tag = uuid7()
    ann = thread({"tag": tag, "owner": "ann", "team": ["red", "blue"]})
    bob = thread({"tag": tag, "owner": "bob", "team": ["blue"]})
    nobody = thread({"tag": tag})
    for t in (ann, bob, nobody):
        await storage.create_thread(t)

    async def ids(access: AccessFilter) -> list[str]:
        where = ThreadFilter(metadata={"tag": tag}, access=access)
        found = await storage.search_threads(where, limit=10, offset=0, sort_by="created_at", descending=False)
        assert await storage.count_threads(where) == len(found)
        return [t.thread_id for t in found]

    assert await ids(ANN) == [ann.thread_id]
    assert await ids(AccessFilter((Contains("team", ("blue",)),))) == [ann.thread_id, bob.thread_id]
    assert await ids(AccessFilter((Contains("team", ("blue", "red")),))) == [ann.thread_id]
    assert await ids(AccessFilter(any_of=(ANN, BOB))) == [ann.thread_id, bob.thread_id]
    assert await ids(AccessFilter(all_of=(ANN, BOB))) == []
    assert await ids(AccessFilter()) == [ann.thread_id, bob.thread_id, nobody.thread_id]
    # The caller's own metadata filter and the auth filter both hold.
    where = ThreadFilter(metadata={"tag": tag, "owner": "bob"}, access=ANN)
    assert await storage.count_threads(where) == 0


async def test_runs_are_seen_through_their_threads_filter(storage: Storage) -> None:
    mine = thread({"owner": "ann"})
    await storage.create_thread(mine)
    record = run(mine.thread_id)
    await admit(storage, record)
    assert await storage.get_run(record.run_id, access=ANN) is not None
    assert await storage.get_run(record.run_id, access=BOB) is None
    listed = await storage.list_runs(mine.thread_id, status=None, limit=10, offset=0, access=BOB)
    assert listed == []
    listed = await storage.list_runs(mine.thread_id, status=None, limit=10, offset=0, access=ANN)
    assert [r.run_id for r in listed] == [record.run_id]
    assert record.run_id not in {r.run_id for r in await storage.runs_with_status(("pending",), access=BOB)}
    assert record.run_id in {r.run_id for r in await storage.runs_with_status(("pending",), access=ANN)}


async def test_admission_to_a_thread_outside_the_filter_is_as_if_it_did_not_exist(storage: Storage) -> None:
    mine = thread({"owner": "ann"})
    await storage.create_thread(mine)
    for if_not_exists in ("reject", "create"):
        with pytest.raises(NotFound) as refused:
            await storage.admit_run(
                run(mine.thread_id),
                b"{}",
                if_not_exists=if_not_exists,  # type: ignore[arg-type]
                thread_metadata={"graph_id": "g"},
                max_unfinished=100,
                access=BOB,
            )
        assert mine.thread_id in refused.value.message
    assert await storage.list_runs(mine.thread_id, status=None, limit=10, offset=0) == []
    await admit(storage, run(mine.thread_id), access=ANN)
    stored = await storage.get_thread(mine.thread_id)
    # An existing thread takes `thread_metadata` only, never the run's.
    assert stored is not None and stored.metadata == {"owner": "ann", "graph_id": "g"}


async def test_a_thread_created_for_a_run_takes_its_new_thread_metadata(storage: Storage) -> None:
    record = run(uuid7())
    await storage.admit_run(
        record,
        b"{}",
        if_not_exists="create",
        thread_metadata={"graph_id": "g"},
        max_unfinished=100,
        new_thread_metadata={"owner": "ann", "graph_id": "spoofed"},
        access=ANN,
    )
    stored = await storage.get_thread(record.thread_id, access=ANN)
    assert stored is not None and stored.metadata == {"owner": "ann", "graph_id": "g"}


async def test_assistants_outside_the_filter_are_not_read_searched_or_counted(storage: Storage) -> None:
    graph, now = uuid7(), now_iso()
    ann = AssistantRecord(uuid7(), graph, "a", now, now, metadata={"owner": "ann"})
    system = AssistantRecord(uuid7(), graph, "s", now, now, metadata={"created_by": "system"})
    for a in (ann, system):
        await storage.put_assistant(a)
    assert await storage.get_assistant(ann.assistant_id, access=ANN) == ann
    assert await storage.get_assistant(ann.assistant_id, access=BOB) is None
    where = AssistantFilter(graph_id=graph, access=ANN)
    assert await storage.search_assistants(where, limit=10, offset=0) == [ann]
    assert await storage.count_assistants(AssistantFilter(graph_id=graph, access=BOB)) == 0


# Every backend's query agrees with AccessFilter.allows, on metadata and filters drawn at random.

_KEYS = st.sampled_from(["owner", "team", "n", "flag", "odd key.$[0]"])
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([1.0, 2.5, -0.0]),
    st.sampled_from(["ann", "bob", "", "1", "true", "ünï"]),
)
_VALUES = st.one_of(_SCALARS, st.lists(_SCALARS, max_size=4), st.dictionaries(_KEYS, _SCALARS, max_size=2))
_METADATA = st.dictionaries(_KEYS, _VALUES, max_size=4)
_CONDITIONS = st.one_of(
    st.builds(Equals, _KEYS, _SCALARS),
    st.builds(Contains, _KEYS, st.lists(_SCALARS, max_size=3).map(tuple)),
)


def _filters(depth: int) -> st.SearchStrategy[AccessFilter]:
    conditions = st.lists(_CONDITIONS, max_size=3).map(tuple)
    if depth == 0:
        return st.builds(AccessFilter, conditions)
    groups = st.lists(_filters(depth - 1), max_size=3).map(tuple)
    return st.builds(AccessFilter, conditions, groups, groups)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(metadatas=st.lists(_METADATA, min_size=1, max_size=6), access=_filters(2))
async def test_every_backend_filters_as_allows_says(
    storage: Storage, metadatas: list[dict[str, Any]], access: AccessFilter
) -> None:
    threads = [thread(m) for m in metadatas]
    for t in threads:
        await storage.create_thread(t)
    ids = [t.thread_id for t in threads]
    where = ThreadFilter(ids=ids, access=access)
    found = await storage.search_threads(where, limit=100, offset=0, sort_by="created_at", descending=False)
    expected = [t.thread_id for t in threads if access.allows(t.metadata)]
    assert [t.thread_id for t in found] == expected
    for t in threads:
        assert (await storage.get_thread(t.thread_id, access=access) is not None) == access.allows(t.metadata)
