"""Assistants with versions, thread operations, run batches, deletes and bulk cancels, and crons
over gRPC, with their status codes (the HTTP routes' shapes are checked against the reference
in tests/http/test_api_reference.py)."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
from google.protobuf import struct_pb2
from langgraph.gateway.v1 import assistants_pb2, crons_pb2, crons_pb2_grpc, runs_pb2, threads_pb2

from tests.conftest import Stubs
from tests.rpc.test_run_stream import value


def struct(data: dict) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(data)
    return out


async def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return err.value.code()


async def wait(stubs: Stubs, assistant_id: str, thread_id: str, **fields: object) -> object:
    fields.setdefault("input", value({}))
    request = runs_pb2.CreateRunRequest(assistant_id=assistant_id, thread_id=thread_id, **fields)  # type: ignore[arg-type]
    return json.loads((await stubs.runs.WaitRun(request)).result_json)


async def test_assistants_in_versions(stubs: Stubs) -> None:
    tag = uuid.uuid4().hex
    create = assistants_pb2.CreateAssistantRequest(
        graph_id="contextual", context=struct({"greeting": "ciao"}), metadata=struct({"tag": tag}), name="rpc bot"
    )
    bot = await stubs.assistants.CreateAssistant(create)
    assert bot.version == 1 and dict(bot.config["configurable"]) == {"greeting": "ciao"}
    thread = await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest())
    assert await wait(stubs, bot.assistant_id, thread.thread_id) == {"said": "ciao!"}
    update = assistants_pb2.UpdateAssistantRequest(assistant_id=bot.assistant_id, context=struct({"greeting": "hej"}))
    assert (await stubs.assistants.UpdateAssistant(update)).version == 2
    assert await wait(stubs, bot.assistant_id, thread.thread_id) == {"said": "hej!"}
    versions = await stubs.assistants.ListAssistantVersions(
        assistants_pb2.ListAssistantVersionsRequest(assistant_id=bot.assistant_id)
    )
    assert [v.version for v in versions.versions] == [2, 1]
    # An old version made the latest again: its context with it (the in-memory Agent Server
    # keeps the newest version's context there).
    latest = assistants_pb2.SetLatestAssistantVersionRequest(assistant_id=bot.assistant_id, version=1)
    assert dict((await stubs.assistants.SetLatestAssistantVersion(latest)).context) == {"greeting": "ciao"}
    assert await wait(stubs, bot.assistant_id, thread.thread_id) == {"said": "ciao!"}
    count = await stubs.assistants.CountAssistants(assistants_pb2.CountAssistantsRequest(metadata=struct({"tag": tag})))
    assert count.count == 1
    schemas = await stubs.assistants.GetAssistantSchemas(
        assistants_pb2.GetAssistantSchemasRequest(assistant_id=bot.assistant_id)
    )
    assert json.loads(schemas.context_schema_json)["properties"]["greeting"]["default"] == "hello"
    graph = await stubs.assistants.GetAssistantGraph(
        assistants_pb2.GetAssistantGraphRequest(assistant_id="nested", xray=True)
    )
    assert any(node["id"] == "writer:review" for node in json.loads(graph.graph_json)["nodes"])
    subgraphs = await stubs.assistants.GetAssistantSubgraphs(
        assistants_pb2.GetAssistantSubgraphsRequest(assistant_id="0813419b-f0e6-579e-bdee-18d9fdf48632")
    )
    assert list(subgraphs.subgraphs) == ["writer"]

    assert await code_of(stubs.assistants.CreateAssistant(assistants_pb2.CreateAssistantRequest(graph_id="nope"))) == (
        grpc.StatusCode.NOT_FOUND
    )
    again = assistants_pb2.CreateAssistantRequest(graph_id="agent", assistant_id=bot.assistant_id)
    assert await code_of(stubs.assistants.CreateAssistant(again)) == grpc.StatusCode.ALREADY_EXISTS
    missing = assistants_pb2.SetLatestAssistantVersionRequest(assistant_id=bot.assistant_id, version=7)
    assert await code_of(stubs.assistants.SetLatestAssistantVersion(missing)) == grpc.StatusCode.NOT_FOUND
    delete = assistants_pb2.DeleteAssistantRequest(assistant_id=bot.assistant_id, delete_threads=True)
    await stubs.assistants.DeleteAssistant(delete)
    gone = threads_pb2.GetThreadRequest(thread_id=thread.thread_id)
    assert await code_of(stubs.threads.GetThread(gone)) == grpc.StatusCode.NOT_FOUND


async def test_thread_update_copy_state_update_prune_and_count(stubs: Stubs) -> None:
    tag = uuid.uuid4().hex
    thread = await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest())
    await wait(stubs, "agent", thread.thread_id, input=value({"topic": "g"}))
    patched = await stubs.threads.UpdateThread(
        threads_pb2.UpdateThreadRequest(thread_id=thread.thread_id, metadata=struct({"tag": tag}))
    )
    assert patched.metadata["tag"] == tag and dict(patched.config) == {"configurable": {}}
    update = threads_pb2.UpdateThreadStateRequest(thread_id=thread.thread_id, values=value({"topic": "h"}))
    written = await stubs.threads.UpdateThreadState(update)
    assert written.checkpoint["thread_id"] == thread.thread_id
    state = await stubs.threads.GetThreadState(threads_pb2.GetThreadStateRequest(thread_id=thread.thread_id))
    metadata = json.loads(state.metadata_json)
    assert (metadata["source"], metadata["graph_id"], metadata["thread_id"]) == ("update", "agent", thread.thread_id)
    copy = await stubs.threads.CopyThread(threads_pb2.CopyThreadRequest(thread_id=thread.thread_id))
    copied = await stubs.threads.GetThreadState(threads_pb2.GetThreadStateRequest(thread_id=copy.thread_id))
    assert json.loads(copied.values_json) == json.loads(state.values_json)
    assert json.loads(copied.metadata_json)["thread_id"] == copy.thread_id
    count = await stubs.threads.CountThreads(threads_pb2.CountThreadsRequest(metadata=struct({"tag": tag})))
    assert count.count == 2
    history = threads_pb2.GetThreadHistoryRequest(thread_id=copy.thread_id, limit=10)
    assert len((await stubs.threads.GetThreadHistory(history)).states) == 5
    keep = threads_pb2.PruneThreadsRequest(thread_ids=[copy.thread_id], strategy="keep_latest")
    assert (await stubs.threads.PruneThreads(keep)).pruned_count == 1
    pruned = (await stubs.threads.GetThreadHistory(history)).states
    assert len(pruned) == 1 and json.loads(pruned[0].values_json) == json.loads(state.values_json)
    delete = threads_pb2.PruneThreadsRequest(thread_ids=[thread.thread_id, copy.thread_id, str(uuid.uuid4())])
    assert (await stubs.threads.PruneThreads(delete)).pruned_count == 2
    assert (await stubs.threads.CountThreads(threads_pb2.CountThreadsRequest(metadata=struct({"tag": tag})))).count == 0
    bad = threads_pb2.PruneThreadsRequest(thread_ids=[thread.thread_id], strategy="everything")
    assert await code_of(stubs.threads.PruneThreads(bad)) == grpc.StatusCode.INVALID_ARGUMENT


async def test_thread_stream(stubs: Stubs) -> None:
    thread = await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest())
    call = stubs.threads.JoinThreadStream(
        threads_pb2.JoinThreadStreamRequest(thread_id=thread.thread_id, stream_modes=["lifecycle"])
    )
    assert dict(await call.initial_metadata()).get("x-subscribed") == "1"
    await wait(stubs, "agent", thread.thread_id, input=value({"topic": "s"}))
    events = []
    while len(events) < 2:
        batch = await call.read()
        events += [(e.event, json.loads(e.data_json)) for e in batch.events]
    call.cancel()
    assert [name for name, _ in events] == ["metadata", "metadata"] and events[1][1]["status"] == "run_done"
    missing = stubs.threads.JoinThreadStream(threads_pb2.JoinThreadStreamRequest(thread_id=str(uuid.uuid4())))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await missing.read()
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_run_batch_delete_and_cancel_by_status(stubs: Stubs) -> None:
    batch = await stubs.runs.CreateRunBatch(
        runs_pb2.CreateRunBatchRequest(
            runs=[runs_pb2.CreateRunRequest(assistant_id="agent", input=value({"topic": t})) for t in "ab"]
        )
    )
    assert len(batch.runs) == 2 and len({r.thread_id for r in batch.runs}) == 2
    with_thread = runs_pb2.CreateRunBatchRequest(runs=[runs_pb2.CreateRunRequest(assistant_id="agent", thread_id="x")])
    assert await code_of(stubs.runs.CreateRunBatch(with_thread)) == grpc.StatusCode.INVALID_ARGUMENT

    thread = await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest())
    slow = runs_pb2.CreateRunRequest(assistant_id="slow", thread_id=thread.thread_id, input=value({}))
    running, queued = await stubs.runs.CreateRun(slow), await stubs.runs.CreateRun(slow)
    cancel = runs_pb2.CancelRunsRequest(thread_id=thread.thread_id, run_ids=[running.run_id, queued.run_id])
    assert (await stubs.runs.CancelRuns(cancel)).count == 2
    for run in (running, queued):
        joined = await stubs.runs.JoinRun(runs_pb2.JoinRunRequest(thread_id=thread.thread_id, run_id=run.run_id))
        assert joined.run.status in (runs_pb2.RUN_STATUS_INTERRUPTED, runs_pb2.RUN_STATUS_RUNNING)
    ended = await stubs.runs.GetRun(runs_pb2.GetRunRequest(thread_id=thread.thread_id, run_id=queued.run_id))
    assert ended.status == runs_pb2.RUN_STATUS_INTERRUPTED
    both = runs_pb2.CancelRunsRequest(thread_id=thread.thread_id, status=runs_pb2.CANCEL_STATUS_ALL)
    assert await code_of(stubs.runs.CancelRuns(both)) == grpc.StatusCode.INVALID_ARGUMENT
    await stubs.runs.CancelRuns(runs_pb2.CancelRunsRequest(status=runs_pb2.CANCEL_STATUS_PENDING))

    await stubs.runs.DeleteRun(runs_pb2.DeleteRunRequest(thread_id=thread.thread_id, run_id=queued.run_id))
    deleted = runs_pb2.GetRunRequest(thread_id=thread.thread_id, run_id=queued.run_id)
    assert await code_of(stubs.runs.GetRun(deleted)) == grpc.StatusCode.NOT_FOUND
    again = runs_pb2.DeleteRunRequest(thread_id=thread.thread_id, run_id=queued.run_id)
    assert await code_of(stubs.runs.DeleteRun(again)) == grpc.StatusCode.NOT_FOUND


async def test_crons(stubs: Stubs) -> None:
    crons = crons_pb2_grpc.CronsServiceStub(stubs.channel)
    tag = uuid.uuid4().hex
    thread = await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest())
    create = crons_pb2.CreateCronRequest(
        thread_id=thread.thread_id,
        schedule="0 9 * * 1",
        timezone="America/Chicago",
        metadata=struct({"tag": tag}),
        payload=struct({"assistant_id": "agent", "input": {"topic": "monday"}}),
    )
    cron = await crons.CreateCron(create)
    assert cron.thread_id == thread.thread_id and cron.enabled and cron.user_id == ""
    assert cron.assistant_id == "fe096781-5601-53d2-b2f6-0d3403f7e9ca"
    assert cron.payload["config"]["configurable"]["cron_id"] == cron.cron_id
    assert cron.next_run_date.ToDatetime().hour in (14, 15)
    stateless = await crons.CreateCron(
        crons_pb2.CreateCronRequest(
            schedule="*/5 * * * *",
            enabled=False,
            on_run_completed=crons_pb2.ON_RUN_COMPLETED_KEEP,
            metadata=struct({"tag": tag}),
            payload=struct({"assistant_id": "agent"}),
        )
    )
    assert not stateless.enabled and stateless.on_run_completed == crons_pb2.ON_RUN_COMPLETED_KEEP
    found = await crons.SearchCrons(crons_pb2.SearchCronsRequest(metadata=struct({"tag": tag}), sort_order="asc"))
    assert [c.cron_id for c in found.crons] == [cron.cron_id, stateless.cron_id]
    disabled = await crons.SearchCrons(crons_pb2.SearchCronsRequest(metadata=struct({"tag": tag}), enabled=False))
    assert [c.cron_id for c in disabled.crons] == [stateless.cron_id]
    updated = await crons.UpdateCron(
        crons_pb2.UpdateCronRequest(cron_id=cron.cron_id, schedule="0 10 * * 1", metadata=struct({"v": 2}))
    )
    assert updated.schedule == "0 10 * * 1" and dict(updated.metadata) == {"tag": tag, "v": 2}
    assert (await crons.GetCron(crons_pb2.GetCronRequest(cron_id=cron.cron_id))).schedule == "0 10 * * 1"
    count = await crons.CountCrons(crons_pb2.CountCronsRequest(thread_id=thread.thread_id))
    assert count.count == 1
    bad = crons_pb2.CreateCronRequest(schedule="every day", payload=struct({"assistant_id": "agent"}))
    assert await code_of(crons.CreateCron(bad)) == grpc.StatusCode.INVALID_ARGUMENT
    unknown = crons_pb2.CreateCronRequest(schedule="* * * * *", payload=struct({"assistant_id": str(uuid.uuid4())}))
    assert await code_of(crons.CreateCron(unknown)) == grpc.StatusCode.NOT_FOUND
    await crons.DeleteCron(crons_pb2.DeleteCronRequest(cron_id=cron.cron_id))
    assert await code_of(crons.GetCron(crons_pb2.GetCronRequest(cron_id=cron.cron_id))) == grpc.StatusCode.NOT_FOUND
    await stubs.threads.DeleteThread(threads_pb2.DeleteThreadRequest(thread_id=thread.thread_id))
    await crons.DeleteCron(crons_pb2.DeleteCronRequest(cron_id=stateless.cron_id))
