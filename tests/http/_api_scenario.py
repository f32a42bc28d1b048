"""One script of the SDK's calls beyond streaming (assistants and their versions, thread copies
and pruning, run batches, deletes and bulk cancels, crons, a thread's state and history), run
with the official Python SDK, sync or async, against any server: what it notes is compared
between the reference and the gateway (and the bridge), ids and timestamps normalised.

Where the reference is itself inconsistent, the script does not go: the in-memory reference
refuses `keep_latest` pruning, and making an old version latest keeps the newest version's
context there (tests of our own cover both)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from langgraph_sdk.errors import APIStatusError

from tests.conformance._normalise import without_volatile

# Calls the SDK client it is given: `call(lambda client: client.threads.create())`.
Call = Callable[[Callable[[Any], Any]], Awaitable[Any]]
SUBGRAPHS = "142ee432-e8aa-5ab4-a2a6-c0752e50bcb6"  # the system assistant of "subgraphs"
NESTED = "0813419b-f0e6-579e-bdee-18d9fdf48632"  # of "nested"
THREAD_KEYS = ("thread_id", "metadata", "status", "config", "values")
RUN_KEYS = ("thread_id", "assistant_id", "multitask_strategy")


def with_async(client: Any) -> Call:
    async def call(fn: Callable[[Any], Any]) -> Any:
        return await fn(client)

    return call


def with_sync(client: Any) -> Call:
    async def call(fn: Callable[[Any], Any]) -> Any:
        return await asyncio.to_thread(fn, client)

    return call


def pick(value: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: value.get(k) for k in keys}


async def status(call: Call, fn: Callable[[Any], Any]) -> int:
    """The HTTP status of a call that is to fail."""
    try:
        await call(fn)
    except APIStatusError as exc:
        return exc.status_code
    return 200


async def scenario(call: Call) -> list[tuple[str, Any]]:
    tag = str(uuid.uuid4())
    notes: list[tuple[str, Any]] = []

    def note(step: str, value: Any) -> None:
        notes.append((step, without_volatile(value)))

    # Assistants, in versions; a run takes the latest version's context.
    bot = await call(
        lambda c: c.assistants.create(
            "contextual", context={"greeting": "bonjour"}, metadata={"tag": tag}, name="Scenario Bot", description="v1"
        )
    )
    aid = bot["assistant_id"]
    note("create", bot)
    note(
        "create again, do_nothing",
        await call(lambda c: c.assistants.create("agent", assistant_id=aid, if_exists="do_nothing")),
    )
    note("create again, raise", await status(call, lambda c: c.assistants.create("agent", assistant_id=aid)))
    note("create on an unknown graph", await status(call, lambda c: c.assistants.create("nope")))
    note(
        "create with configurable and context",
        await status(call, lambda c: c.assistants.create("agent", config={"configurable": {"a": 1}}, context={"b": 2})),
    )
    other = await call(lambda c: c.assistants.create("agent", metadata={"tag": tag}, name="alpha scenario"))
    note("update", await call(lambda c: c.assistants.update(aid, metadata={"v": 2}, name="Scenario Bot 2")))
    note("versions", await call(lambda c: c.assistants.get_versions(aid)))
    note("versions by metadata", await call(lambda c: c.assistants.get_versions(aid, metadata={"v": 2})))
    note("set latest", await call(lambda c: c.assistants.set_latest(aid, 1)))
    note("get", await call(lambda c: c.assistants.get(aid)))
    thread = await call(lambda c: c.threads.create())
    tid = thread["thread_id"]
    note("run with version 1", await call(lambda c: c.runs.wait(tid, aid, input={})))
    note("update context", await call(lambda c: c.assistants.update(aid, context={"greeting": "hola"})))
    note("run with version 3", await call(lambda c: c.runs.wait(tid, aid, input={})))
    note("thread after runs", pick(await call(lambda c: c.threads.get(tid)), THREAD_KEYS))
    note("search by name", await call(lambda c: c.assistants.search(name="SCENARIO", metadata={"tag": tag})))
    note(
        "search sorted",
        await call(
            lambda c: c.assistants.search(
                metadata={"tag": tag}, sort_by="name", sort_order="asc", select=["name", "version"]
            )
        ),
    )
    note("count", await call(lambda c: c.assistants.count(metadata={"tag": tag})))
    note("subgraphs", await call(lambda c: c.assistants.get_subgraphs(SUBGRAPHS, recurse=True)))
    note("subgraphs of a namespace", await call(lambda c: c.assistants.get_subgraphs(NESTED, namespace="writer")))
    note("schemas", await call(lambda c: c.assistants.get_schemas(aid)))
    note("graph, xray", await call(lambda c: c.assistants.get_graph(NESTED, xray=True)))

    # A thread's state and history, its copy, pruning.
    joke = await call(lambda c: c.threads.create())
    jid = joke["thread_id"]
    await call(lambda c: c.runs.wait(jid, "agent", input={"topic": "x"}))
    note("thread", pick(await call(lambda c: c.threads.get(jid)), THREAD_KEYS))
    note("history", await call(lambda c: c.threads.get_history(jid, limit=10)))
    await call(lambda c: c.threads.update_state(jid, {"topic": "y"}))
    note("state after an update", await call(lambda c: c.threads.get_state(jid)))
    copy = await call(lambda c: c.threads.copy(jid))
    note("copy", pick(copy, ("metadata", "status")))
    note("state of the copy", await call(lambda c: c.threads.get_state(copy["thread_id"])))
    note("history of the copy", await call(lambda c: c.threads.get_history(copy["thread_id"], limit=10)))
    nested = await call(lambda c: c.threads.create())
    await call(lambda c: c.runs.wait(nested["thread_id"], "nested", input={"topic": "x"}))
    note("subgraph state", await call(lambda c: c.threads.get_state(nested["thread_id"], subgraphs=True)))
    missing = str(uuid.uuid4())
    note("copy of a missing thread", await status(call, lambda c: c.threads.copy(missing)))
    note("prune", await call(lambda c: c.threads.prune([copy["thread_id"], missing])))
    note("pruned thread", await status(call, lambda c: c.threads.get(copy["thread_id"])))
    note("prune, bad strategy", await status(call, lambda c: c.threads.prune([jid], strategy="nope")))

    # Runs: a batch, a delete, a bulk cancel.
    batch = await call(
        lambda c: c.runs.create_batch(
            [{"assistant_id": "agent", "input": {"topic": "a"}}, {"assistant_id": "agent", "input": {"topic": "b"}}]
        )
    )
    note("batch", [pick(r, ("assistant_id", "multitask_strategy")) for r in batch])
    runs = await call(lambda c: c.runs.list(jid))
    note("delete a run", await call(lambda c: c.runs.delete(jid, runs[0]["run_id"])))
    note("deleted run", await status(call, lambda c: c.runs.get(jid, runs[0]["run_id"])))
    note("delete it again", await status(call, lambda c: c.runs.delete(jid, runs[0]["run_id"])))
    slow = await call(lambda c: c.threads.create())
    sid = slow["thread_id"]
    first = await call(lambda c: c.runs.create(sid, "slow", input={}))
    queued = await call(lambda c: c.runs.create(sid, "slow", input={}, multitask_strategy="enqueue"))
    # A run deleted while it runs is cancelled first, then deleted.
    note("delete a running run", await status(call, lambda c: c.runs.delete(sid, first["run_id"])))
    await call(lambda c: c.runs.cancel_many(thread_id=sid, run_ids=[first["run_id"], queued["run_id"]]))
    await call(lambda c: c.runs.join(sid, queued["run_id"]))
    for run in (first, queued):
        try:
            found = await call(lambda c, run=run: c.runs.get(sid, run["run_id"]))
        except APIStatusError as exc:
            note("cancelled run", exc.status_code)
        else:
            note("cancelled run", found["status"])
    note("cancel, bad status", await status(call, lambda c: c.runs.cancel_many(status="nope")))  # type: ignore[arg-type]
    # A thread deleted while it runs: its run is cancelled, the thread deleted.
    busy = await call(lambda c: c.threads.create())
    await call(lambda c: c.runs.create(busy["thread_id"], "slow", input={}))
    note("delete a busy thread", await call(lambda c: c.threads.delete(busy["thread_id"])))
    note("deleted busy thread", await status(call, lambda c: c.threads.get(busy["thread_id"])))

    # Crons: on a thread, stateless; search, count, update, delete.
    on_thread = await call(
        lambda c: c.crons.create_for_thread(
            tid, "agent", schedule="0 0 1 1 *", input={"topic": "cron"}, metadata={"tag": tag}
        )
    )
    note("cron on a thread", on_thread)
    end = datetime(2031, 1, 1, tzinfo=UTC)
    stateless = await call(
        lambda c: c.crons.create(
            aid,
            schedule="*/5 * * * *",
            input={},
            timezone="Europe/Paris",
            end_time=end,
            on_run_completed="keep",
            metadata={"tag": tag, "kind": "stateless"},
        )
    )
    note("stateless cron", stateless)
    note("cron, bad schedule", await status(call, lambda c: c.crons.create("agent", schedule="every day")))
    note(
        "cron, bad timezone",
        await status(call, lambda c: c.crons.create("agent", schedule="* * * * *", timezone="Mars/Base")),
    )
    note(
        "cron, unknown assistant", await status(call, lambda c: c.crons.create(str(uuid.uuid4()), schedule="* * * * *"))
    )
    note(
        "cron on a missing thread",
        await status(call, lambda c: c.crons.create_for_thread(missing, "agent", schedule="* * * * *")),
    )
    note("crons of the thread", await call(lambda c: c.crons.search(thread_id=tid)))
    note(
        "crons of the assistant", await call(lambda c: c.crons.search(assistant_id=aid, select=["schedule", "enabled"]))
    )
    note(
        "crons sorted",
        await call(
            lambda c: c.crons.search(metadata={"tag": tag}, sort_by="created_at", sort_order="asc", select=["schedule"])
        ),
    )
    note("count crons", await call(lambda c: c.crons.count(metadata={"tag": tag})))
    note(
        "update a cron",
        await call(
            lambda c: c.crons.update(stateless["cron_id"], schedule="0 12 * * *", enabled=False, metadata={"v": 2})
        ),
    )
    note("disabled crons", await call(lambda c: c.crons.search(metadata={"tag": tag}, enabled=False)))
    note("delete a cron", await call(lambda c: c.crons.delete(on_thread["cron_id"])))
    note("delete it again", await status(call, lambda c: c.crons.delete(on_thread["cron_id"])))

    # Deleting an assistant takes its crons, and with delete_threads its threads.
    note("delete the assistant", await call(lambda c: c.assistants.delete(aid, delete_threads=True)))
    note("its thread", await status(call, lambda c: c.threads.get(tid)))
    note("its crons", await call(lambda c: c.crons.count(metadata={"tag": tag})))
    note("deleted assistant", await status(call, lambda c: c.assistants.get(aid)))
    await call(lambda c: c.assistants.delete(other["assistant_id"]))
    note("count after", await call(lambda c: c.assistants.count(metadata={"tag": tag})))
    return notes
