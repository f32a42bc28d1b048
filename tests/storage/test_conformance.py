"""What every storage backend must do, run against each one: the same tests, as LangGraph's
checkpoint packages test every saver. Each decision for a thread (admit, claim, finish, delete)
is one step that no concurrent request splits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import cast

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from gateway.core.gateway import Gateway
from gateway.core.thread_stream import ThreadEvent
from gateway.shared.errors import Conflict, NotFound, TooManyRuns
from gateway.shared.records import (
    Admission,
    AssistantChange,
    AssistantFilter,
    AssistantRecord,
    Event,
    MultitaskStrategy,
    RunRecord,
    ThreadChange,
    ThreadFilter,
    ThreadRecord,
    now_iso,
)
from gateway.shared.serde import loads
from gateway.shared.util import uuid7
from gateway.storage import Storage
from gateway.storage.base import AssistantChanged
from gateway.storage.signals import SignalKind, Signals


def thread(metadata: dict | None = None, **fields: object) -> ThreadRecord:
    now = now_iso()
    return ThreadRecord(uuid7(), now, now, now, metadata or {}, **fields)  # type: ignore[arg-type]


def run(thread_id: str, strategy: MultitaskStrategy = "enqueue") -> RunRecord:
    now = now_iso()
    return RunRecord(uuid7(), thread_id, "a", now, now, "pending", {}, strategy, {"resumable": False})


OWNER = "process-a"


async def admit(
    storage: Storage,
    record: RunRecord,
    *,
    create: bool = False,
    limit: int = 100,
    claim: bool = False,
    new_thread: bool = False,
    assistant: AssistantRecord | None = None,
) -> list[str]:
    admission = await storage.admit_run(
        record,
        b"{}",
        if_not_exists="create" if create else "reject",
        thread_metadata={"graph_id": "g"},
        max_unfinished=limit,
        claim_as=OWNER if claim else None,
        lease_seconds=30,
        new_thread=new_thread,
        assistant=assistant,
    )
    return admission.cancel


async def claim(storage: Storage, owner: str = OWNER, limit: int = 10, lease: float = 30) -> list[RunRecord]:
    return [c.run for c in await storage.claim_runs(owner, limit, lease)]


# Threads


async def test_threads_are_created_once_read_changed_and_deleted(storage: Storage) -> None:
    t = thread({"owner": "ann"})
    assert await storage.create_thread(t)
    assert not await storage.create_thread(t)
    assert await storage.get_thread(t.thread_id) == t
    assert await storage.update_thread(t.thread_id, ThreadChange(status="busy", values=b'{"a":1}'))
    got = await storage.get_thread(t.thread_id)
    assert got is not None and got.status == "busy" and got.values == b'{"a":1}' and got.metadata == {"owner": "ann"}
    assert await storage.delete_thread(t.thread_id) == []
    assert await storage.get_thread(t.thread_id) is None
    assert await storage.delete_thread(t.thread_id) is None
    assert not await storage.update_thread(t.thread_id, ThreadChange(status="idle"))


async def test_a_number_the_database_gives_back_as_a_huge_integer_can_be_written_again(storage: Storage) -> None:
    # Postgres gives 1e20 back as the integer 100000000000000000000, past what orjson writes.
    t = thread({"big": 1e20})
    assert await storage.create_thread(t)
    got = await storage.get_thread(t.thread_id)
    assert got is not None and got.metadata["big"] == 1e20
    assert await storage.update_thread(t.thread_id, ThreadChange(metadata={**got.metadata, "more": 1}))
    # A run admitted to it writes the graph into the thread's metadata, read as the database has it.
    await admit(storage, run(t.thread_id))
    again = await storage.get_thread(t.thread_id)
    assert again is not None and again.metadata == {"big": 1e20, "more": 1, "graph_id": "g"}


async def test_thread_search_filters_inside_the_query(storage: Storage) -> None:
    tag = uuid7()
    ann = thread(
        {"tag": tag, "owner": "ann", "n": 1, "flag": True, "deep": {"a": [1, 2]}, "big": 2**63}, values=b'{"x":"y"}'
    )
    bob = thread({"tag": tag, "owner": "bob", "n": 1.0, "flag": 1}, status="busy")
    other = thread({"tag": "elsewhere", "owner": "ann"})
    for t in (ann, bob, other):
        await storage.create_thread(t)

    async def ids(where: ThreadFilter, **kw: object) -> list[str]:
        args = {"limit": 10, "offset": 0, "sort_by": "created_at", "descending": False, **kw}
        return [t.thread_id for t in await storage.search_threads(where, **args)]  # type: ignore[arg-type]

    assert await ids(ThreadFilter(metadata={"tag": tag})) == [ann.thread_id, bob.thread_id]
    assert await ids(ThreadFilter(metadata={"tag": tag}), descending=True) == [bob.thread_id, ann.thread_id]
    assert await ids(ThreadFilter(metadata={"tag": tag, "owner": "ann"})) == [ann.thread_id]
    # Numbers compare as numbers; booleans are not numbers.
    assert await ids(ThreadFilter(metadata={"tag": tag, "n": 1})) == [ann.thread_id, bob.thread_id]
    assert await ids(ThreadFilter(metadata={"tag": tag, "flag": True})) == [ann.thread_id]
    # Integers past 64 bits too (sqlite keeps them as reals), and they are no error.
    assert await ids(ThreadFilter(metadata={"tag": tag, "big": 2**63})) == [ann.thread_id]
    assert await ids(ThreadFilter(metadata={"tag": tag, "big": 2**64 - 1})) == []
    assert await ids(ThreadFilter(metadata={"tag": tag, "deep": {"a": [1, 2]}})) == [ann.thread_id]
    assert await ids(ThreadFilter(metadata={"tag": tag, "missing": None})) == []
    assert await ids(ThreadFilter(metadata={"tag": tag}, status="busy")) == [bob.thread_id]
    assert await ids(ThreadFilter(metadata={"tag": tag}, values={"x": "y"})) == [ann.thread_id]
    assert await ids(ThreadFilter(ids=[other.thread_id, bob.thread_id])) == [bob.thread_id, other.thread_id]
    assert await ids(ThreadFilter(ids=[])) == []
    assert await ids(ThreadFilter(metadata={"tag": tag}), limit=1, offset=1) == [bob.thread_id]
    assert await storage.count_threads(ThreadFilter(metadata={"tag": tag})) == 2
    assert await storage.count_threads(ThreadFilter(metadata={"tag": tag}, status="idle")) == 1


# Runs: admission, claims, ends


async def test_admission_decides_by_the_threads_unfinished_runs(storage: Storage) -> None:
    t = thread()
    await storage.create_thread(t)
    first = run(t.thread_id)
    assert await admit(storage, first) == []
    stored = await storage.get_thread(t.thread_id)
    assert stored is not None and stored.status == "busy" and stored.metadata == {"graph_id": "g"}
    with pytest.raises(Conflict):
        await admit(storage, run(t.thread_id, "reject"))
    second = run(t.thread_id, "interrupt")
    assert await admit(storage, second) == [first.run_id]
    with pytest.raises(TooManyRuns):
        await admit(storage, run(t.thread_id), limit=2)
    rollback = run(t.thread_id, "rollback")
    assert await admit(storage, rollback) == [first.run_id, second.run_id]
    # Refused runs were not written.
    assert [r.run_id for r in await storage.unfinished_runs(t.thread_id)] == [
        first.run_id,
        second.run_id,
        rollback.run_id,
    ]
    assert await storage.get_run_request(first.run_id) == b"{}"


async def test_admission_creates_a_missing_thread_only_when_asked(storage: Storage) -> None:
    record = run(uuid7())
    with pytest.raises(NotFound):
        await admit(storage, record)
    assert await storage.get_thread(record.thread_id) is None
    assert await admit(storage, record, create=True) == []
    assert await storage.get_thread(record.thread_id) is not None


async def test_concurrent_admissions_on_one_thread_hold_its_strategy(storage: Storage) -> None:
    for _ in range(20):
        t = thread()
        await storage.create_thread(t)
        results = await asyncio.gather(
            *(admit(storage, run(t.thread_id, "reject")) for _ in range(10)), return_exceptions=True
        )
        assert sum(not isinstance(r, BaseException) for r in results) == 1
        assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
        limited = thread()
        await storage.create_thread(limited)
        results = await asyncio.gather(
            *(admit(storage, run(limited.thread_id), limit=3) for _ in range(10)), return_exceptions=True
        )
        assert sum(not isinstance(r, BaseException) for r in results) == 3


async def test_a_thread_runs_one_claimed_run_at_a_time_oldest_first(storage: Storage) -> None:
    t, other = thread(), thread()
    await storage.create_thread(t)
    await storage.create_thread(other)
    runs = [run(t.thread_id) for _ in range(3)]
    for r in runs:
        await admit(storage, r)
    elsewhere = run(other.thread_id)
    await admit(storage, elsewhere)
    claimed = await claim(storage)
    assert [r.run_id for r in claimed] == [runs[0].run_id, elsewhere.run_id]
    assert claimed[0].status == "running" and claimed[0].attempt == 1
    assert await storage.claim_runs(OWNER, 10, 30) == []
    # Ending it leaves the thread busy while others wait, then frees the next.
    assert await storage.finish_run(
        runs[0].run_id, t.thread_id, "success", ThreadChange(status="idle"), owner=OWNER, attempt=1
    )
    stored = await storage.get_thread(t.thread_id)
    assert stored is not None and stored.status == "busy"
    assert not await storage.finish_run(runs[0].run_id, t.thread_id, "error", ThreadChange(status="error"))
    got = await storage.get_run(runs[0].run_id)
    assert got is not None and got.status == "success"
    # A queued run ends without starting only while it is pending.
    assert await storage.finish_run(
        runs[2].run_id, t.thread_id, "interrupted", ThreadChange(status="idle"), expect=("pending",)
    )
    (claimed_next,) = await claim(storage, limit=1)
    assert claimed_next.run_id == runs[1].run_id
    assert not await storage.finish_run(runs[1].run_id, t.thread_id, None, ThreadChange(), expect=("pending",))
    # Only its holder, at its attempt, ends a claimed run.
    assert not await storage.finish_run(runs[1].run_id, t.thread_id, None, ThreadChange(), owner="x", attempt=1)
    # A rollback deletes the run; the thread takes the change once nothing else is unfinished.
    assert await storage.finish_run(runs[1].run_id, t.thread_id, None, ThreadChange(status="idle"))
    assert await storage.get_run(runs[1].run_id) is None
    stored = await storage.get_thread(t.thread_id)
    assert stored is not None and stored.status == "idle"
    assert await storage.claim_runs(OWNER, 10, 30) == []


async def test_an_idle_thread_claims_at_admission(storage: Storage) -> None:
    t = thread()
    await storage.create_thread(t)
    first, second = run(t.thread_id), run(t.thread_id)
    assert await storage.admit_run(
        first, b"{}", if_not_exists="reject", thread_metadata={}, max_unfinished=9, claim_as=OWNER, lease_seconds=30
    ) == Admission([], claimed=True)
    assert first.status == "running" and first.attempt == 1
    admitted = await storage.admit_run(
        second, b"{}", if_not_exists="reject", thread_metadata={}, max_unfinished=9, claim_as=OWNER, lease_seconds=30
    )
    assert not admitted.claimed and second.status == "pending"
    assert await storage.claim_runs("process-b", 10, 30) == []


async def test_expired_leases_go_back_to_the_queue_until_attempts_run_out(storage: Storage) -> None:
    t = thread()
    await storage.create_thread(t)
    record = run(t.thread_id)
    await admit(storage, record, claim=True)
    assert await storage.renew_leases(OWNER, [record.run_id], 0.05) == []
    assert await storage.renew_leases("process-b", [record.run_id], 30) == [record.run_id]
    await asyncio.sleep(0.2)
    requeued, failed = await storage.expire_leases(2)
    assert [r.run_id for r in requeued] == [record.run_id] and failed == []
    # Another process takes it over as attempt 2; its old holder can no longer end it.
    (again,) = await claim(storage, "process-b", lease=0.05)
    assert again.attempt == 2
    assert not await storage.finish_run(record.run_id, t.thread_id, "success", ThreadChange(), owner=OWNER, attempt=1)
    assert await storage.renew_leases(OWNER, [record.run_id], 30) == [record.run_id]
    await asyncio.sleep(0.2)
    requeued, failed = await storage.expire_leases(2)
    assert requeued == [] and [r.run_id for r in failed] == [record.run_id]
    got = await storage.get_run(record.run_id)
    assert got is not None and got.status == "error"


async def test_a_draining_process_hands_runs_back_without_using_an_attempt(storage: Storage) -> None:
    t = thread()
    await storage.create_thread(t)
    record = run(t.thread_id)
    await admit(storage, record, claim=True)
    assert await storage.release_runs("process-b", [record.run_id]) == []
    (released,) = await storage.release_runs(OWNER, [record.run_id])
    assert released.status == "pending" and released.attempt == 0
    (again,) = await claim(storage, "process-b")
    assert again.attempt == 1
    requeued, _ = await storage.expire_leases(3, all_running=True)
    assert [r.run_id for r in requeued] == [record.run_id]


async def test_deleting_a_thread_reports_its_unfinished_runs_and_takes_its_runs(storage: Storage) -> None:
    t = thread()
    await storage.create_thread(t)
    done, waiting = run(t.thread_id), run(t.thread_id)
    await admit(storage, done, claim=True)
    await storage.finish_run(done.run_id, t.thread_id, "success", ThreadChange(status="idle"))
    await admit(storage, waiting)
    await storage.append_events(waiting.run_id, [Event(1, "metadata", (), b"{}")])
    assert await storage.delete_thread(t.thread_id) == [waiting.run_id]
    assert await storage.get_run(done.run_id) is None and await storage.get_run(waiting.run_id) is None
    assert await storage.read_events(waiting.run_id, 0, 10) == []
    with pytest.raises(NotFound):
        await admit(storage, run(t.thread_id))


async def test_runs_list_newest_first_and_by_status(storage: Storage) -> None:
    t = thread()
    await storage.create_thread(t)
    runs = [run(t.thread_id) for _ in range(3)]
    for r in runs:
        await admit(storage, r)
    await claim(storage)
    listed = await storage.list_runs(t.thread_id, status=None, limit=10, offset=0)
    assert [r.run_id for r in listed] == [r.run_id for r in reversed(runs)]
    assert [r.run_id for r in await storage.list_runs(t.thread_id, status="running", limit=10, offset=0)] == [
        runs[0].run_id
    ]
    assert len(await storage.list_runs(t.thread_id, status=None, limit=1, offset=1)) == 1
    assert {r.run_id for r in await storage.runs_with_status(("pending",))} >= {runs[1].run_id, runs[2].run_id}


# Assistants


async def test_assistants_are_put_once_and_searched(storage: Storage) -> None:
    graph = uuid7()
    now = now_iso()
    first = AssistantRecord(uuid7(), graph, "one", now, now, metadata={"team": "a"})
    assert await storage.put_assistant(first) == first
    changed = AssistantRecord(first.assistant_id, graph, "renamed", now, now)
    assert await storage.put_assistant(changed) == first
    second = AssistantRecord(uuid7(), graph, "two", now, now, metadata={"team": "b"})
    await storage.put_assistant(second)
    assert await storage.get_assistant(second.assistant_id) == second
    where = AssistantFilter(graph_id=graph, metadata={"team": "b"})
    assert await storage.search_assistants(where, limit=10, offset=0) == [second]
    assert await storage.count_assistants(AssistantFilter(graph_id=graph)) == 2
    assert await storage.count_assistants(AssistantFilter(graph_id=graph, name="one")) == 1


async def test_a_run_is_admitted_only_while_its_assistant_is_as_it_was_read(storage: Storage) -> None:
    now = now_iso()
    read = await storage.put_assistant(AssistantRecord(uuid7(), uuid7(), "one", now, now, config={"v": 1}))
    existing = thread()
    assert await storage.create_thread(existing)

    async def admit_with(assistant: AssistantRecord, thread_id: str, *, new: bool) -> RunRecord:
        record = run(thread_id)
        await admit(storage, record, create=True, claim=True, new_thread=new, assistant=assistant)
        return record

    # As read: admitted, on a new thread and on an existing one.
    admitted = [await admit_with(read, uuid7(), new=True), await admit_with(read, existing.thread_id, new=False)]
    assert [await storage.get_run(r.run_id) for r in admitted] == admitted

    # Changed since (the next version, another version made the latest again, deleted): nothing
    # is stored, the run nor its new thread.
    updated = await storage.update_assistant(read.assistant_id, AssistantChange(config={"v": 2}))
    assert updated is not None and updated.version == 2
    back = await storage.set_assistant_version(read.assistant_id, 1)
    assert back is not None and back.version == 1 and back.updated_at != read.updated_at
    for stale in (read, updated):
        new_thread = uuid7()
        for thread_id, new in ((new_thread, True), (existing.thread_id, False)):
            with pytest.raises(AssistantChanged):
                await admit_with(stale, thread_id, new=new)
        assert await storage.get_thread(new_thread) is None
    assert await storage.unfinished_runs(existing.thread_id) == [admitted[1]]
    assert (await admit_with(back, existing.thread_id, new=False)).status == "pending"
    assert await storage.delete_assistant(read.assistant_id)
    with pytest.raises(AssistantChanged):
        await admit_with(back, uuid7(), new=True)


# Event log


async def test_the_event_log_reads_in_order_after_a_seq_and_is_pruned_by_age(storage: Storage) -> None:
    run_id = uuid7()
    events = [Event(i, "custom", ("sub:1",) if i % 2 else (), b'{"i":%d}' % i) for i in range(1, 6)]
    await storage.append_events(run_id, events[:3])
    await storage.append_events(run_id, events[2:])  # a batch written twice adds nothing
    assert await storage.read_events(run_id, 0, 10) == events
    assert await storage.read_events(run_id, 2, 2) == events[2:4]
    assert await storage.prune_events(60) == 0
    await asyncio.sleep(0.02)
    assert await storage.prune_events(0.01) >= 5
    assert await storage.read_events(run_id, 0, 10) == []
    await storage.append_events(run_id, events)
    await storage.delete_events(run_id)
    assert await storage.read_events(run_id, 0, 10) == []


async def test_a_stateless_runs_new_thread_is_made_with_it_and_goes_with_it(storage: Storage) -> None:
    # Admitted on a thread id just made (one step on Postgres), claimed or queued.
    claimed, queued = run(uuid7()), run(uuid7())
    for record, claim_as in ((claimed, OWNER), (queued, None)):
        admission = await storage.admit_run(
            record,
            b"{}",
            if_not_exists="create",
            thread_metadata={"graph_id": "g"},
            new_thread_metadata={"user": "ann"},
            max_unfinished=10,
            claim_as=claim_as,
            lease_seconds=30,
            assistant_config={"tags": ["t"]},
            new_thread=True,
        )
        assert admission.cancel == [] and admission.claimed is (claim_as is not None)
        made = await storage.get_thread(record.thread_id)
        assert made is not None and made.status == "busy" and made.metadata == {"user": "ann", "graph_id": "g"}
        assert made.config.get("tags") == ["t"]
    stored = await storage.get_run(claimed.run_id)
    assert stored is not None and stored.status == "running" and stored.attempt == 1
    stored = await storage.get_run(queued.run_id)
    assert stored is not None and stored.status == "pending"
    # Ended by someone else's process or attempt: nothing goes.
    assert not await storage.finish_run(
        claimed.run_id, claimed.thread_id, "success", ThreadChange(), owner="x", attempt=1, delete_thread=True
    )
    assert await storage.get_thread(claimed.thread_id) is not None
    # Ended by its own: the run and its thread are gone.
    assert await storage.finish_run(
        claimed.run_id, claimed.thread_id, "success", ThreadChange(), owner=OWNER, attempt=1, delete_thread=True
    )
    assert await storage.get_thread(claimed.thread_id) is None and await storage.get_run(claimed.run_id) is None
    assert not await storage.finish_run(
        claimed.run_id, claimed.thread_id, "success", ThreadChange(), owner=OWNER, attempt=1, delete_thread=True
    )


# Signals and thread streams: what a process publishes reaches every process as the JSON that
# the gateway's serializer makes of it, LangChain messages included, whatever the deployment.

SIGNAL_KINDS: tuple[SignalKind, ...] = ("wake", "cancel", "admitted", "state", "watch")


def _messages() -> list[object]:
    return [HumanMessage(content="hi", id="h-1"), AIMessage(content="hello", id="a-1")]


@pytest.mark.parametrize("kind", SIGNAL_KINDS)
async def test_a_signal_holding_langchain_messages_arrives_as_json(signals: Signals, kind: SignalKind) -> None:
    received: asyncio.Queue[tuple[SignalKind, dict[str, object]]] = asyncio.Queue()
    signals.subscribe(lambda k, p: received.put_nowait((k, p)))
    payload = {"thread_id": "t", "run_id": "r", "state": {"values": {"messages": _messages()}}}
    await signals.publish(kind, payload)
    async with asyncio.timeout(10):
        got_kind, got = await received.get()
    assert got_kind == kind
    assert got["thread_id"] == "t" and got["run_id"] == "r"
    messages = got["state"]["values"]["messages"]  # type: ignore[index]
    assert [(m["type"], m["content"], m["id"]) for m in messages] == [("human", "hi", "h-1"), ("ai", "hello", "a-1")]


async def test_a_state_update_with_messages_reaches_the_thread_stream(core: Gateway) -> None:
    thread_id = (await core.threads.create(metadata={"graph_id": "tool_agent"})).thread_id
    stream = cast(
        AsyncGenerator[list[ThreadEvent]], core.thread_streams.subscribe(thread_id, modes=frozenset({"state_update"}))
    )
    first = asyncio.ensure_future(anext(stream))
    try:
        await asyncio.sleep(0)  # the subscriber's first step registers it
        assert thread_id in core.thread_streams._followers
        # As POST /threads/{id}/state does: the update, then its state to the thread's streams.
        _, state = await core.threads.update_state(
            thread_id, {"messages": [{"type": "human", "content": "hi", "id": "h-1"}]}, as_node="agent"
        )
        assert isinstance(state["values"]["messages"][0], HumanMessage)
        await core.thread_streams.state_updated(thread_id, state)
        async with asyncio.timeout(10):
            (event,) = await first
        update = loads(event.data)
        assert event.name == "state_update" and update["thread_id"] == thread_id
        assert [(m["type"], m["content"]) for m in update["state"]["values"]["messages"]] == [("human", "hi")]
        # An update with no values still publishes the state, messages and all.
        _, state = await core.threads.update_state(thread_id, None, as_node="agent")
        await core.thread_streams.state_updated(thread_id, state)
        async with asyncio.timeout(10):
            (event,) = await anext(stream)
        assert [m["id"] for m in loads(event.data)["state"]["values"]["messages"]] == ["h-1"]
    finally:
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await stream.aclose()
