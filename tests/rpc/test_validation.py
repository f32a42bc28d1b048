"""Bad input over gRPC is INVALID_ARGUMENT naming the field before anything runs (never INTERNAL
after), its message quotes at most a short prefix of it, and replies leave unset times unset."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf import json_format, struct_pb2, timestamp_pb2
from langgraph.gateway.v1 import (
    crons_pb2,
    crons_pb2_grpc,
    runs_pb2,
    sessions_pb2,
    sessions_pb2_grpc,
    store_pb2,
    store_pb2_grpc,
    threads_pb2,
)

from gateway.shared.serde import MAX_NESTING
from tests._server import GatewayProcess
from tests.conftest import Stubs
from tests.rpc.test_errors import rpc_error


@pytest_asyncio.fixture
async def crons(gateway: GatewayProcess) -> AsyncIterator[crons_pb2_grpc.CronsServiceStub]:
    async with grpc.aio.insecure_channel(gateway.grpc_target) as channel:
        yield crons_pb2_grpc.CronsServiceStub(channel)


@pytest_asyncio.fixture
async def store(gateway: GatewayProcess) -> AsyncIterator[store_pb2_grpc.StoreServiceStub]:
    async with grpc.aio.insecure_channel(gateway.grpc_target) as channel:
        yield store_pb2_grpc.StoreServiceStub(channel)


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    msg = struct_pb2.Struct()
    json_format.ParseDict(value, msg)
    return msg


def value(obj: Any) -> struct_pb2.Value:
    msg = struct_pb2.Value()
    json_format.ParseDict(obj, msg)
    return msg


def nested(levels: int) -> object:
    """An array `levels` deep ([] is one level)."""
    out: object = []
    for _ in range(levels - 1):
        out = [out]
    return out


def with_number(number: float) -> struct_pb2.Struct:
    # ParseDict refuses NaN; the wire does not.
    msg = struct_pb2.Struct()
    msg.fields["a"].list_value.values.add().struct_value.fields["b"].number_value = number
    return msg


async def new_thread(stubs: Stubs) -> str:
    return (await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest())).thread_id


async def runs_of(stubs: Stubs, thread_id: str) -> list[runs_pb2.Run]:
    return list((await stubs.runs.ListRuns(runs_pb2.ListRunsRequest(thread_id=thread_id))).runs)


@pytest.mark.parametrize(
    ("command", "names"),
    [
        ({"bogus": 1}, "'bogus'"),
        ({"resume": None}, "command must set one of"),
        ({"update": 3}, "command.update"),
        ({"goto": [1]}, "command.goto"),
    ],
)
async def test_a_malformed_command_is_refused_before_any_run(stubs: Stubs, command: dict, names: str) -> None:
    thread_id = await new_thread(stubs)
    request = runs_pb2.CreateRunRequest(assistant_id="agent", thread_id=thread_id, command=struct(command))
    for call in (stubs.runs.CreateRun, stubs.runs.WaitRun, stubs.runs.RunStream, stubs.runs.RunStreamBatch):
        err = await rpc_error(lambda call=call: call(request))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
        assert names in err.details()
    assert await runs_of(stubs, thread_id) == []


async def test_input_and_command_together_are_refused_before_any_run(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    request = runs_pb2.CreateRunRequest(
        assistant_id="agent",
        thread_id=thread_id,
        input=value({"topic": "x"}),
        command=struct({"update": {"topic": "y"}}),
    )
    for call in (stubs.runs.CreateRun, stubs.runs.WaitRun, stubs.runs.RunStream):
        err = await rpc_error(lambda call=call: call(request))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "input and command" in err.details()
    assert await runs_of(stubs, thread_id) == []


async def test_a_run_that_got_no_input_says_so_in_its_error_event(stubs: Stubs) -> None:
    # What @grpc/proto-loader sends for `input: {topic: "x"}`: a Value with no kind set.
    request = runs_pb2.CreateRunRequest(assistant_id="agent", stream_mode=[runs_pb2.STREAM_MODE_VALUES])
    request.input.SetInParent()
    events = [event async for event in stubs.runs.RunStream(request)]
    errors = [e.error for e in events if e.HasField("error")]
    assert len(errors) == 1 and errors[0].error == "EmptyInputError"
    assert errors[0].message.startswith("the run received no input"), errors[0].message


async def test_a_long_malformed_id_is_invalid_argument_quoted_short(stubs: Stubs) -> None:
    bad = "x" * 10_000
    invalid, not_found = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    for call, code in (
        (lambda: stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=bad)), invalid),
        (lambda: stubs.runs.GetRun(runs_pb2.GetRunRequest(thread_id=bad, run_id=bad)), invalid),
        # Neither an assistant's id nor a graph's name: an unknown assistant.
        (lambda: stubs.runs.RunStream(runs_pb2.CreateRunRequest(assistant_id=bad)), not_found),
        (lambda: stubs.runs.WaitRun(runs_pb2.CreateRunRequest(assistant_id="agent", thread_id=bad)), invalid),
    ):
        err = await rpc_error(call)
        assert err.code() == code, err.details()[:200]
        assert "'xxxxxxxx" in err.details() and "x" * 100 not in err.details()


@pytest.mark.parametrize("field", ["metadata", "input", "config"])
async def test_a_field_nested_past_the_limit_is_refused_naming_it(stubs: Stubs, field: str) -> None:
    thread_id = await new_thread(stubs)
    deep = {"deep": nested(MAX_NESTING)}
    request = runs_pb2.CreateRunRequest(assistant_id="agent", thread_id=thread_id)
    if field == "input":
        request.input.CopyFrom(value(deep))
    else:
        getattr(request, field).CopyFrom(struct(deep))
    for call in (stubs.runs.WaitRun, stubs.runs.RunStream):
        err = await rpc_error(lambda call=call: call(request))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details().startswith(f"{field} is nested more than {MAX_NESTING} levels deep")
    err = await rpc_error(lambda: stubs.threads.CreateThread(threads_pb2.CreateThreadRequest(metadata=struct(deep))))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "metadata is nested" in err.details()
    assert await runs_of(stubs, thread_id) == []


async def test_input_nested_49_levels_is_refused_before_the_run(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    request = runs_pb2.CreateRunRequest(assistant_id="agent", thread_id=thread_id, input=value(nested(49)))
    err = await rpc_error(lambda: stubs.runs.WaitRun(request))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "input is nested" in err.details()
    assert await runs_of(stubs, thread_id) == []


async def test_metadata_nested_to_the_limit_comes_back_from_every_read(stubs: Stubs) -> None:
    deep = {"deep": nested(MAX_NESTING - 1), "tag": uuid.uuid4().hex}
    thread = await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest(metadata=struct(deep)))
    got = await stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=thread.thread_id))
    assert json_format.MessageToDict(got.metadata) == deep
    found = await stubs.threads.SearchThreads(threads_pb2.SearchThreadsRequest(metadata=struct({"tag": deep["tag"]})))
    assert [t.thread_id for t in found.threads] == [thread.thread_id]
    request = runs_pb2.CreateRunRequest(
        assistant_id="agent", thread_id=thread.thread_id, input=value({"topic": "x", "deep": deep["deep"]})
    )
    result = await stubs.runs.WaitRun(request)
    assert result.run.kwargs["input"]["deep"] == deep["deep"]
    (run,) = await runs_of(stubs, thread.thread_id)
    assert run.kwargs["input"]["deep"] == deep["deep"]


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
async def test_nan_and_infinities_are_refused_naming_the_field(
    stubs: Stubs, store: store_pb2_grpc.StoreServiceStub, number: float
) -> None:
    bad = with_number(number)
    input_value = struct_pb2.Value(struct_value=bad)
    calls = [
        ("metadata", lambda: stubs.threads.CreateThread(threads_pb2.CreateThreadRequest(metadata=bad))),
        ("metadata", lambda: stubs.threads.SearchThreads(threads_pb2.SearchThreadsRequest(metadata=bad))),
        ("input", lambda: stubs.runs.WaitRun(runs_pb2.CreateRunRequest(assistant_id="agent", input=input_value))),
        ("context", lambda: stubs.runs.RunStream(runs_pb2.CreateRunRequest(assistant_id="agent", context=bad))),
        ("value", lambda: store.PutItem(store_pb2.PutItemRequest(namespace=["nan"], key="k", value=bad))),
        ("filter", lambda: store.SearchItems(store_pb2.SearchItemsRequest(namespace_prefix=["nan"], filter=bad))),
    ]
    for field, call in calls:
        err = await rpc_error(call)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, err.details())
        assert err.details().startswith(f"{field} holds NaN or an infinity"), err.details()


@pytest.mark.parametrize("ttl", [math.inf, math.nan, 1e13, -1.0])
async def test_a_store_ttl_out_of_range_is_refused(store: store_pb2_grpc.StoreServiceStub, ttl: float) -> None:
    request = store_pb2.PutItemRequest(namespace=["ttl"], key="k", value=struct({"a": 1}), ttl_minutes=ttl)
    err = await rpc_error(lambda: store.PutItem(request))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "ttl must be a positive number" in err.details()


async def test_history_checkpoint_fields_of_the_wrong_type_are_refused(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    for checkpoint, names in (
        ({"checkpoint_id": 5}, "checkpoint.checkpoint_id"),
        ({"checkpoint_ns": ["a"]}, "checkpoint.checkpoint_ns"),
        ({"checkpoint_map": "x"}, "checkpoint.checkpoint_map"),
    ):
        request = threads_pb2.GetThreadHistoryRequest(thread_id=thread_id, checkpoint=struct(checkpoint))
        err = await rpc_error(lambda request=request: stubs.threads.GetThreadHistory(request))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and names in err.details(), err.details()


async def test_a_cron_end_time_out_of_range_is_refused(crons: crons_pb2_grpc.CronsServiceStub) -> None:
    for seconds in (2**62, -(2**62), 253402300800):  # the last: 10000-01-01
        request = crons_pb2.CreateCronRequest(
            schedule="0 9 * * 1",
            payload=struct({"assistant_id": "agent"}),
            end_time=timestamp_pb2.Timestamp(seconds=seconds),
        )
        err = await rpc_error(lambda request=request: crons.CreateCron(request))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "end_time" in err.details(), err.details()


async def test_unset_times_are_absent(stubs: Stubs, crons: crons_pb2_grpc.CronsServiceStub) -> None:
    payload = struct({"assistant_id": "agent"})
    cron = await crons.CreateCron(crons_pb2.CreateCronRequest(schedule="0 9 * * 1", payload=payload, enabled=False))
    assert not cron.HasField("end_time") and cron.HasField("next_run_date") and cron.HasField("created_at")
    assert not (await crons.GetCron(crons_pb2.GetCronRequest(cron_id=cron.cron_id))).HasField("end_time")
    ends = timestamp_pb2.Timestamp(seconds=4102444800)  # 2100-01-01
    request = crons_pb2.CreateCronRequest(schedule="0 9 * * 1", payload=payload, enabled=False, end_time=ends)
    ending = await crons.CreateCron(request)
    assert ending.end_time == ends
    for made in (cron, ending):
        await crons.DeleteCron(crons_pb2.DeleteCronRequest(cron_id=made.cron_id))

    thread_id = await new_thread(stubs)
    state = await stubs.threads.GetThreadState(threads_pb2.GetThreadStateRequest(thread_id=thread_id))
    assert not state.HasField("created_at") and not state.HasField("checkpoint")


async def test_a_session_command_with_json_it_cannot_hold_is_an_error_reply(gateway: GatewayProcess) -> None:
    thread_id = str(uuid.uuid4())
    deep = sessions_pb2.StartRun(assistant_id="agent", input=value({"deep": nested(MAX_NESTING)}))
    nan = sessions_pb2.StartRun(assistant_id="agent", input=struct_pb2.Value(struct_value=with_number(math.nan)))
    requests = [
        sessions_pb2.SessionRequest(id=1, open=sessions_pb2.OpenSession(thread_id=thread_id)),
        sessions_pb2.SessionRequest(id=2, start_run=deep),
        sessions_pb2.SessionRequest(id=3, start_run=nan),
    ]
    async with grpc.aio.insecure_channel(gateway.grpc_target) as channel:
        call = sessions_pb2_grpc.SessionsServiceStub(channel).ThreadSession(iter(requests))
        errors = {}
        async for response in call:
            if response.HasField("error"):
                errors[response.error.id] = response.error
            if len(errors) == 2:
                call.cancel()
                break
    assert errors[2].code == "invalid_argument" and errors[2].message.startswith("input is nested more than")
    assert errors[3].code == "invalid_argument" and errors[3].message.startswith("input holds NaN")


@pytest.mark.parametrize("limit", [0, -3])
async def test_a_recursion_limit_below_one_is_refused_before_the_run(stubs: Stubs, limit: int) -> None:
    thread_id = await new_thread(stubs)
    config = struct({"recursion_limit": limit})
    request = runs_pb2.CreateRunRequest(assistant_id="agent", thread_id=thread_id, config=config)
    for call in (stubs.runs.WaitRun, stubs.runs.RunStream, stubs.runs.CreateRun):
        err = await rpc_error(lambda call=call: call(request))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details() == f"config.recursion_limit must be at least 1, not {limit}"
    assert await runs_of(stubs, thread_id) == []
