"""Bad input gets a clear status that names the field or id, before any event; a failing
graph ends its own stream in-band while the server keeps serving."""

from __future__ import annotations

import asyncio
import json
import uuid

import grpc
import pytest
from google.protobuf import struct_pb2
from langgraph.gateway.v1 import assistants_pb2, runs_pb2, threads_pb2

from tests.conftest import Stubs
from tests.rpc.test_run_stream import stream, value


async def rpc_error(call) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        result = call()
        if hasattr(result, "__aiter__"):
            async for _ in result:
                pass
        else:
            await result
    return err.value


@pytest.mark.parametrize(
    ("fields", "code", "names"),
    [
        ({}, grpc.StatusCode.INVALID_ARGUMENT, "assistant_id"),
        ({"assistant_id": "nope"}, grpc.StatusCode.NOT_FOUND, "nope"),
        ({"assistant_id": str(uuid.UUID(int=7))}, grpc.StatusCode.NOT_FOUND, str(uuid.UUID(int=7))),
        ({"assistant_id": "agent", "thread_id": "not-a-uuid"}, grpc.StatusCode.INVALID_ARGUMENT, "not-a-uuid"),
        (
            {"assistant_id": "agent", "thread_id": str(uuid.UUID(int=9))},
            grpc.StatusCode.NOT_FOUND,
            str(uuid.UUID(int=9)),
        ),
        ({"assistant_id": "agent", "stream_mode": [99]}, grpc.StatusCode.INVALID_ARGUMENT, "stream_mode"),
        ({"assistant_id": "agent", "multitask_strategy": 42}, grpc.StatusCode.INVALID_ARGUMENT, "multitask_strategy"),
        (
            {"assistant_id": "agent", "interrupt_before": ["*", "x"]},
            grpc.StatusCode.INVALID_ARGUMENT,
            "interrupt_before",
        ),
        ({"assistant_id": "agent", "checkpoint_id": "nope"}, grpc.StatusCode.INVALID_ARGUMENT, "checkpoint_id"),
    ],
)
async def test_bad_run_requests_fail_before_any_event(
    stubs: Stubs, fields: dict, code: grpc.StatusCode, names: str
) -> None:
    err = await rpc_error(lambda: stubs.runs.RunStream(runs_pb2.CreateRunRequest(**fields)))
    assert err.code() == code
    assert names in err.details()


async def test_context_and_configurable_together_are_refused(stubs: Stubs) -> None:
    request = runs_pb2.CreateRunRequest(assistant_id="agent")
    request.config.update({"configurable": {"a": 1}})
    request.context.update({"b": 2})
    err = await rpc_error(lambda: stubs.runs.RunStream(request))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "configurable and context" in err.details()


async def test_resume_without_thread_is_refused(stubs: Stubs) -> None:
    request = runs_pb2.CreateRunRequest(assistant_id="approval")
    request.command.update({"resume": "yes"})
    err = await rpc_error(lambda: stubs.runs.RunStream(request))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "thread_id" in err.details()


async def test_unknown_ids_are_not_found(stubs: Stubs) -> None:
    missing = str(uuid.uuid4())
    checks = [
        lambda: stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=missing)),
        lambda: stubs.threads.GetThreadState(threads_pb2.GetThreadStateRequest(thread_id=missing)),
        lambda: stubs.threads.DeleteThread(threads_pb2.DeleteThreadRequest(thread_id=missing)),
        lambda: stubs.runs.GetRun(runs_pb2.GetRunRequest(thread_id=missing, run_id=missing)),
        lambda: stubs.runs.JoinRunStream(runs_pb2.JoinRunStreamRequest(thread_id=missing, run_id=missing)),
        lambda: stubs.assistants.GetAssistant(assistants_pb2.GetAssistantRequest(assistant_id=missing)),
    ]
    for check in checks:
        err = await rpc_error(check)
        assert err.code() == grpc.StatusCode.NOT_FOUND
        assert missing in err.details()


async def test_malformed_ids_are_invalid_arguments(stubs: Stubs) -> None:
    err = await rpc_error(lambda: stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id="x")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "thread_id" in err.details()
    err = await rpc_error(lambda: stubs.runs.GetRun(runs_pb2.GetRunRequest(thread_id=str(uuid.uuid4()), run_id="r")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "run_id" in err.details()

    # Event ids of ours past what storage holds, before the lookup of their run or thread.
    for last_event_id in ("18446744073709551616", f"1-{2**63}", "9" * 5000):
        join = runs_pb2.JoinRunStreamRequest(
            thread_id=str(uuid.uuid4()), run_id=str(uuid.uuid4()), last_event_id=last_event_id
        )
        err = await rpc_error(lambda request=join: stubs.runs.JoinRunStream(request))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "last_event_id" in err.details()
    for last_event_id in ("x-y", "18446744073709551616", "1-18446744073709551616", "9" * 5000):
        follow = threads_pb2.JoinThreadStreamRequest(thread_id=str(uuid.uuid4()), last_event_id=last_event_id)
        err = await rpc_error(lambda request=follow: stubs.threads.JoinThreadStream(request))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "last-event-id" in err.details()


def _varint(n: int) -> bytes:
    out = b""
    while n > 0x7F:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def deep_input(levels: int) -> bytes:
    """A CreateRunRequest whose input is `levels` arrays deep, as bytes: the Python protobuf
    library would not build one past its own parse limit."""
    value = struct_pb2.Value(number_value=1).SerializeToString()
    for _ in range(levels):
        items = b"\x0a" + _varint(len(value)) + value  # ListValue.values = 1
        value = b"\x32" + _varint(len(items)) + items  # Value.list_value = 6
    field = runs_pb2.CreateRunRequest.DESCRIPTOR.fields_by_name["input"].number
    head = runs_pb2.CreateRunRequest(assistant_id="agent").SerializeToString()
    return head + _varint(field << 3 | 2) + _varint(len(value)) + value


async def test_requests_protobuf_cannot_parse_are_invalid_arguments(stubs: Stubs) -> None:
    raw: dict = {"request_serializer": bytes, "response_deserializer": bytes}
    create = stubs.channel.unary_unary("/langgraph.gateway.v1.RunsService/CreateRun", **raw)
    stream = stubs.channel.unary_stream("/langgraph.gateway.v1.RunsService/RunStream", **raw)
    # Each level of JSON in a Value is two messages; protobuf parses at most 100 levels of them.
    # The gateway parses 45 levels, then refuses more than 32 (its replies could not carry them).
    assert runs_pb2.Run.FromString(await create(deep_input(32))).run_id
    err = await rpc_error(lambda: create(deep_input(45)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("input is nested more than 32 levels deep")
    for call in (lambda: create(deep_input(60)), lambda: stream(deep_input(60))):
        err = await rpc_error(call)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "100 levels" in err.details() and "input" in err.details()
    for method, call in (("CreateRun", create), ("RunStream", stream)):
        err = await rpc_error(lambda: call(b"\xff\xff\xff"))  # noqa: B023
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details() == f"malformed {method} request: its wire format is corrupt"


async def test_failing_graph_sends_an_error_event_and_the_server_keeps_serving(stubs: Stubs) -> None:
    events = await stream(stubs, assistant_id="failing", input=value({"topic": "x"}), stream_mode=["updates"])
    assert [e.WhichOneof("event") for e in events] == ["metadata", "error", "end"]
    assert events[1].error.error == "ValueError"
    assert events[1].error.message == "the node failed on purpose"
    assert events[2].end.status == runs_pb2.RUN_STATUS_ERROR
    ok = await stream(stubs, assistant_id="agent", input=value({"topic": "x"}), stream_mode=["updates"])
    assert ok[-1].end.status == runs_pb2.RUN_STATUS_SUCCESS


async def test_failing_run_marks_run_and_thread_error(stubs: Stubs) -> None:
    thread = await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest())
    events = await stream(stubs, assistant_id="failing", thread_id=thread.thread_id, input=value({"topic": "x"}))
    run = await stubs.runs.GetRun(runs_pb2.GetRunRequest(thread_id=thread.thread_id, run_id=events[0].metadata.run_id))
    assert run.status == runs_pb2.RUN_STATUS_ERROR
    stored = await stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=thread.thread_id))
    assert stored.status == threads_pb2.THREAD_STATUS_ERROR
    assert json.loads(stored.error_json) == {"error": "ValueError", "message": "the node failed on purpose"}


async def test_internal_error_messages_are_hidden(stubs: Stubs) -> None:
    events = await stream(stubs, assistant_id="secret", input=value({}))
    error = next(e.error for e in events if e.HasField("error"))
    assert error.error == "Secret"
    assert "hunter2" not in error.message


async def test_a_failing_run_does_not_disturb_a_concurrent_stream(stubs: Stubs) -> None:
    slow = asyncio.create_task(
        stream(stubs, assistant_id="slow", input=value({"n": 20, "delay": 0.01}), stream_mode=["custom"])
    )
    failures = await asyncio.gather(*(stream(stubs, assistant_id="failing", input=value({})) for _ in range(5)))
    assert all(f[-1].end.status == runs_pb2.RUN_STATUS_ERROR for f in failures)
    events = await slow
    assert [json.loads(e.custom.json)["tick"] for e in events if e.HasField("custom")] == list(range(20))
