"""Assistant versions, crons, thread copies, pruned checkpoints and deleted runs, on every
backend: each change is one step, and a cron's tick is claimed by exactly one caller."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TypedDict

import pytest
from langgraph.graph import START, StateGraph

from gateway.shared.errors import Conflict, NotFound
from gateway.shared.records import (
    AccessFilter,
    AssistantChange,
    AssistantFilter,
    AssistantRecord,
    CronChange,
    CronFilter,
    CronRecord,
    Equals,
    ThreadChange,
    ThreadRecord,
    now_iso,
)
from gateway.shared.util import uuid7
from gateway.storage import Storage
from tests.storage.test_conformance import admit, claim, run, thread


def assistant(graph: str = "g", name: str = "mine", **fields: object) -> AssistantRecord:
    now = now_iso()
    return AssistantRecord(str(uuid7()), graph, name, now, now, **fields)  # type: ignore[arg-type]


# Assistants


async def test_an_assistant_is_created_once_as_its_first_version(storage: Storage) -> None:
    first = assistant(config={"configurable": {"x": 1}}, context={"x": 1}, metadata={"team": "a"})
    assert await storage.create_assistant(first)
    assert await storage.create_assistant(assistant())  # another id: created too
    again = AssistantRecord(first.assistant_id, "g", "other", first.created_at, first.updated_at)
    assert not await storage.create_assistant(again)
    assert await storage.get_assistant(first.assistant_id) == first
    versions = await storage.list_assistant_versions(first.assistant_id, metadata=None, limit=10, offset=0)
    assert [(v.version, v.config, v.metadata) for v in versions] == [(1, first.config, first.metadata)]


async def test_an_update_is_the_next_version_and_an_old_one_can_be_made_latest(storage: Storage) -> None:
    first = assistant(config={"configurable": {"x": 1}}, context={"x": 1}, metadata={"team": "a"})
    await storage.create_assistant(first)
    second = await storage.update_assistant(
        first.assistant_id, AssistantChange(context={"y": 2}, metadata={"tier": 2}, name="renamed")
    )
    assert second is not None
    assert (second.version, second.config, second.context) == (2, {"configurable": {"y": 2}}, {"y": 2})
    assert (second.metadata, second.name, second.created_at) == ({"team": "a", "tier": 2}, "renamed", first.created_at)
    assert await storage.get_assistant(first.assistant_id) == second
    listed = await storage.list_assistant_versions(first.assistant_id, metadata=None, limit=10, offset=0)
    assert [v.version for v in listed] == [2, 1]
    only = await storage.list_assistant_versions(first.assistant_id, metadata={"tier": 2}, limit=10, offset=0)
    assert [v.version for v in only] == [2]

    back = await storage.set_assistant_version(first.assistant_id, 1)
    assert back is not None and (back.version, back.config, back.context, back.name) == (
        1,
        first.config,
        {"x": 1},
        "mine",
    )
    # The next update is after the highest version, not after the latest one.
    third = await storage.update_assistant(first.assistant_id, AssistantChange(description="d"))
    assert third is not None and (third.version, third.config, third.description) == (3, first.config, "d")
    with pytest.raises(NotFound):
        await storage.set_assistant_version(first.assistant_id, 9)
    assert await storage.update_assistant(str(uuid7()), AssistantChange(name="x")) is None


async def test_concurrent_updates_make_distinct_versions(storage: Storage) -> None:
    first = assistant()
    await storage.create_assistant(first)
    changes = [AssistantChange(metadata={"n": n}) for n in range(5)]
    done = await asyncio.gather(*(storage.update_assistant(first.assistant_id, c) for c in changes))
    assert sorted(a.version for a in done if a is not None) == [2, 3, 4, 5, 6]


async def test_a_hidden_assistant_is_not_updated_listed_or_deleted(storage: Storage) -> None:
    mine = assistant(metadata={"owner": "alice"})
    await storage.create_assistant(mine)
    bob = AccessFilter(conditions=(Equals("owner", "bob"),))
    assert await storage.update_assistant(mine.assistant_id, AssistantChange(name="x"), access=bob) is None
    assert await storage.set_assistant_version(mine.assistant_id, 1, access=bob) is None
    assert await storage.list_assistant_versions(mine.assistant_id, metadata=None, limit=5, offset=0, access=bob) == []
    assert not await storage.delete_assistant(mine.assistant_id, access=bob)
    assert await storage.delete_assistant(mine.assistant_id)
    assert await storage.get_assistant(mine.assistant_id) is None
    assert await storage.list_assistant_versions(mine.assistant_id, metadata=None, limit=5, offset=0) == []


async def test_assistants_are_searched_by_part_of_their_name_and_sorted(storage: Storage) -> None:
    graph = str(uuid7())
    made = [assistant(graph, name) for name in ("Beta bot", "alpha", "gamma BOT")]
    for a in made:
        await storage.create_assistant(a)
    found = await storage.search_assistants(AssistantFilter(graph_id=graph, name="bot"), limit=10, offset=0)
    assert {a.name for a in found} == {"Beta bot", "gamma BOT"}
    by_name = await storage.search_assistants(
        AssistantFilter(graph_id=graph), limit=10, offset=0, sort_by="name", descending=False
    )
    assert [a.name for a in by_name] == ["alpha", "Beta bot", "gamma BOT"]
    assert await storage.count_assistants(AssistantFilter(graph_id=graph, name="BOT")) == 2


# Threads


def _counting_graph(storage: Storage) -> object:
    class State(TypedDict):
        n: int

    def step(state: State) -> State:
        return {"n": state["n"] + 1}

    return (
        StateGraph(State)
        .add_node("one", step)
        .add_node("two", step)
        .add_edge(START, "one")
        .add_edge("one", "two")
        .compile(checkpointer=storage.checkpointer)
    )


async def test_checkpoints_name_their_thread_and_the_runs_configurable(storage: Storage) -> None:
    graph = _counting_graph(storage)
    config = {"configurable": {"thread_id": str(uuid7()), "graph_id": "g", "__secret": 1}, "metadata": {"m": "v"}}
    await graph.ainvoke({"n": 0}, config)  # type: ignore[attr-defined]
    state = await graph.aget_state(config)  # type: ignore[attr-defined]
    metadata = state.metadata
    assert metadata["thread_id"] == config["configurable"]["thread_id"]  # type: ignore[index]
    assert (metadata["graph_id"], metadata["m"], metadata["source"]) == ("g", "v", "loop")
    assert "__secret" not in metadata


async def test_a_copy_has_the_threads_checkpoints_under_its_own_id(storage: Storage) -> None:
    graph = _counting_graph(storage)
    source = thread({"owner": "alice"})
    await storage.create_thread(source)
    await storage.update_thread(source.thread_id, ThreadChange(values=b'{"n":2}', status="idle"))
    config = {"configurable": {"thread_id": source.thread_id}}
    await graph.ainvoke({"n": 0}, config)  # type: ignore[attr-defined]

    now = now_iso()
    copy = await storage.copy_thread(source.thread_id, ThreadRecord(str(uuid7()), now, now, now, {}))
    assert copy is not None and copy.metadata == {"owner": "alice"} and copy.values == b'{"n":2}'
    stored = await storage.get_thread(copy.thread_id)
    assert stored is not None and stored.metadata == {"owner": "alice"}
    copied = {"configurable": {"thread_id": copy.thread_id}}
    original = [s async for s in graph.aget_state_history(config)]  # type: ignore[attr-defined]
    history = [s async for s in graph.aget_state_history(copied)]  # type: ignore[attr-defined]
    assert [s.values for s in history] == [s.values for s in original]
    assert [s.config["configurable"]["checkpoint_id"] for s in history] == [
        s.config["configurable"]["checkpoint_id"] for s in original
    ]
    assert {s.metadata["thread_id"] for s in history} == {copy.thread_id}
    # The copy goes on by itself.
    await graph.ainvoke({"n": 10}, copied)  # type: ignore[attr-defined]
    assert (await graph.aget_state(config)).values == {"n": 2}  # type: ignore[attr-defined]
    assert (await graph.aget_state(copied)).values == {"n": 12}  # type: ignore[attr-defined]

    hidden = AccessFilter(conditions=(Equals("owner", "bob"),))
    assert (
        await storage.copy_thread(source.thread_id, ThreadRecord(str(uuid7()), now, now, now, {}), access=hidden)
        is None
    )
    with pytest.raises(Conflict):
        await storage.copy_thread(source.thread_id, ThreadRecord(copy.thread_id, now, now, now, {}))


async def test_keeping_the_latest_checkpoint_keeps_the_state(storage: Storage) -> None:
    graph = _counting_graph(storage)
    t = thread()
    config = {"configurable": {"thread_id": t.thread_id}}
    await graph.ainvoke({"n": 0}, config)  # type: ignore[attr-defined]
    await graph.ainvoke({"n": 5}, config)  # type: ignore[attr-defined]
    before = await graph.aget_state(config)  # type: ignore[attr-defined]
    assert len([s async for s in graph.aget_state_history(config)]) > 1  # type: ignore[attr-defined]
    await storage.keep_latest_checkpoints(t.thread_id)
    history = [s async for s in graph.aget_state_history(config)]  # type: ignore[attr-defined]
    assert [s.values for s in history] == [before.values] and history[0].parent_config is None
    await graph.ainvoke({"n": 1}, config)  # type: ignore[attr-defined]
    assert (await graph.aget_state(config)).values == {"n": 3}  # type: ignore[attr-defined]


async def test_a_thread_takes_the_assistants_and_the_runs_config_when_a_run_starts(storage: Storage) -> None:
    t = thread()
    await storage.create_thread(t)
    first = run(t.thread_id)
    first.kwargs["config"] = {"tags": ["a"], "configurable": {"run_only": 1}}
    await storage.admit_run(
        first,
        b"{}",
        if_not_exists="reject",
        thread_metadata={},
        max_unfinished=10,
        assistant_config={"configurable": {"model": "m"}, "recursion_limit": 5},
    )
    stored = await storage.get_thread(t.thread_id)
    assert stored is not None
    assert stored.config == {"recursion_limit": 5, "tags": ["a"], "configurable": {"model": "m"}}
    # A run queued behind another leaves the config as it is.
    second = run(t.thread_id)
    second.kwargs["config"] = {"tags": ["b"]}
    await storage.admit_run(
        second, b"{}", if_not_exists="reject", thread_metadata={}, max_unfinished=10, assistant_config={}
    )
    again = await storage.get_thread(t.thread_id)
    assert again is not None and again.config == stored.config


# Runs


async def test_a_run_is_deleted_only_once_it_ended(storage: Storage) -> None:
    t = thread()
    await storage.create_thread(t)
    r = run(t.thread_id)
    await admit(storage, r, claim=True)
    with pytest.raises(Conflict):
        await storage.delete_run(t.thread_id, r.run_id)
    await storage.finish_run(r.run_id, t.thread_id, "success", ThreadChange(status="idle"))
    assert await storage.delete_run(str(uuid7()), r.run_id) is None
    deleted = await storage.delete_run(t.thread_id, r.run_id)
    assert deleted is not None and deleted.status == "success"
    assert await storage.get_run(r.run_id) is None
    assert await storage.delete_run(t.thread_id, r.run_id) is None
    assert await claim(storage) == []


# Crons


def cron(
    assistant_id: str = "a", thread_id: str | None = None, *, due: datetime | None = None, **fields: object
) -> CronRecord:
    now = now_iso()
    return CronRecord(
        str(uuid7()),
        assistant_id,
        thread_id,
        "* * * * *",
        {"assistant_id": assistant_id, "input": {"n": 1}},
        due or datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1),
        now,
        now,
        **fields,  # type: ignore[arg-type]
    )


async def test_a_cron_is_created_read_updated_and_deleted(storage: Storage) -> None:
    end = datetime(2031, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    made = cron(end_time=end, metadata={"team": "a"}, timezone="Europe/Paris", on_run_completed="keep")
    await storage.create_cron(made)
    assert await storage.get_cron(made.cron_id) == made
    later = made.next_run_date + timedelta(hours=1)
    updated = await storage.update_cron(
        made.cron_id, CronChange(schedule="0 * * * *", next_run_date=later, enabled=False, metadata={"team": "b"})
    )
    assert updated is not None
    assert (updated.schedule, updated.next_run_date, updated.enabled, updated.metadata) == (
        "0 * * * *",
        later,
        False,
        {"team": "b"},
    )
    assert updated.end_time == end and updated.timezone == "Europe/Paris" and updated.payload == made.payload
    cleared = await storage.update_cron(made.cron_id, CronChange(clear_end_time=True))
    assert cleared is not None and cleared.end_time is None and cleared.next_run_date == later
    hidden = AccessFilter(conditions=(Equals("team", "a"),))
    assert await storage.get_cron(made.cron_id, access=hidden) is None
    assert await storage.update_cron(made.cron_id, CronChange(enabled=True), access=hidden) is None
    assert not await storage.delete_cron(made.cron_id, access=hidden)
    assert await storage.delete_cron(made.cron_id)
    assert await storage.get_cron(made.cron_id) is None
    assert await storage.update_cron(made.cron_id, CronChange(enabled=True)) is None


async def test_crons_are_searched_counted_and_go_with_their_thread_and_assistant(storage: Storage) -> None:
    t = thread({"owner": "alice"})
    await storage.create_thread(t)
    assistant_id = str(uuid7())
    on_thread = cron(assistant_id, t.thread_id, metadata={"kind": "thread"})
    stateless = cron(assistant_id, metadata={"kind": "stateless"}, enabled=False)
    other = cron(str(uuid7()))
    for c in (on_thread, stateless, other):
        await storage.create_cron(c)
    mine = CronFilter(assistant_id=assistant_id)
    found = await storage.search_crons(mine, limit=10, offset=0, sort_by="created_at", descending=False)
    assert [c.cron_id for c in found] == [on_thread.cron_id, stateless.cron_id]
    assert await storage.count_crons(mine) == 2
    assert await storage.count_crons(CronFilter(assistant_id=assistant_id, enabled=True)) == 1
    assert await storage.count_crons(CronFilter(thread_id=t.thread_id)) == 1
    assert await storage.count_crons(CronFilter(metadata={"kind": "stateless"})) == 1
    # A caller who may not see the thread does not see its cron; a cron without a thread stays.
    bob = AccessFilter(conditions=(Equals("owner", "bob"),))
    assert await storage.count_crons(CronFilter(assistant_id=assistant_id, thread_access=bob)) == 1

    await storage.delete_thread(t.thread_id)
    assert await storage.get_cron(on_thread.cron_id) is None
    now = now_iso()
    await storage.create_assistant(AssistantRecord(assistant_id, "g", "x", now, now))
    assert await storage.delete_assistant(assistant_id)
    assert await storage.get_cron(stateless.cron_id) is None
    assert await storage.get_cron(other.cron_id) is not None


async def test_a_due_tick_is_claimed_by_exactly_one_caller(storage: Storage) -> None:
    now = datetime.now(UTC)
    tick = now.replace(microsecond=0) - timedelta(seconds=1)
    due = cron(due=tick)
    ended = cron(due=tick, end_time=now - timedelta(minutes=5))
    disabled = cron(due=tick, enabled=False)
    future = cron()
    for c in (due, ended, disabled, future):
        await storage.create_cron(c)
    listed = [c.cron_id for c in await storage.due_crons(now, 100)]
    assert due.cron_id in listed and not {ended.cron_id, disabled.cron_id, future.cron_id} & set(listed)
    following = tick + timedelta(minutes=1)
    wins = await asyncio.gather(*(storage.claim_cron(due.cron_id, tick, following) for _ in range(8)))
    assert sorted(wins) == [False] * 7 + [True]
    assert due.cron_id not in [c.cron_id for c in await storage.due_crons(now, 100)]
    stored = await storage.get_cron(due.cron_id)
    assert stored is not None and stored.next_run_date == following
