"""Every error status carries a google.rpc.Status (AIP-193) in `grpc-status-details-bin`: an
ErrorInfo with the gateway's domain, a stable reason and the ids involved, plus BadRequest,
ResourceInfo or RetryInfo as the code asks, decoded here from a real server's trailers."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from langgraph.gateway.v1 import (
    assistants_pb2,
    crons_pb2,
    crons_pb2_grpc,
    runs_pb2,
    sessions_pb2,
    sessions_pb2_grpc,
    threads_pb2,
)

from gateway.rpc.status import DOMAIN
from gateway.shared.errors import GatewayError
from tests._server import GatewayProcess
from tests.conftest import Stubs, make_stubs, own_gateway
from tests.rpc.test_run_stream import new_thread
from tests.rpc.test_runs import create


@dataclass
class Details:
    code: grpc.StatusCode
    reason: str
    metadata: dict[str, str]
    violations: list[tuple[str, str]] = field(default_factory=list)
    resource: tuple[str, str] | None = None
    retry_after: float | None = None


def details(err: grpc.aio.AioRpcError) -> Details:
    """The status details of a failed call, checked against its code and message as
    grpc_status.rpc_status.from_call checks them."""
    raw = [value for key, value in err.trailing_metadata() or () if key == "grpc-status-details-bin"]
    assert len(raw) == 1, f"no status details on {err.code()}: {err.details()}"
    status = status_pb2.Status.FromString(raw[0])
    assert status.code == err.code().value[0] and status.message == err.details()
    infos = []
    out = Details(err.code(), "", {})
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.violations = [(v.field, v.description) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
            resource = error_details_pb2.ResourceInfo()
            detail.Unpack(resource)
            out.resource = (resource.resource_type, resource.resource_name)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            out.retry_after = retry.retry_delay.ToTimedelta().total_seconds()
    assert len(infos) == 1 and infos[0].domain == DOMAIN
    out.reason, out.metadata = infos[0].reason, dict(infos[0].metadata)
    return out


async def failure(call: Callable[[], Any]) -> Details:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        result = call()
        if hasattr(result, "__aiter__"):
            async for _ in result:
                pass
        else:
            await result
    return details(err.value)


async def test_unknown_thread_names_it(stubs: Stubs) -> None:
    missing = str(uuid.uuid4())
    got = await failure(lambda: stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=missing)))
    assert (got.code, got.reason) == (grpc.StatusCode.NOT_FOUND, "THREAD_NOT_FOUND")
    assert got.metadata == {"thread_id": missing}
    assert got.resource == ("thread", missing)


async def test_unknown_assistant_by_id_and_by_name(stubs: Stubs) -> None:
    missing = str(uuid.uuid4())
    by_id = await failure(
        lambda: stubs.assistants.GetAssistant(assistants_pb2.GetAssistantRequest(assistant_id=missing))
    )
    assert (by_id.code, by_id.reason) == (grpc.StatusCode.NOT_FOUND, "ASSISTANT_NOT_FOUND")
    assert by_id.metadata == {"assistant_id": missing} and by_id.resource == ("assistant", missing)
    by_name = await failure(lambda: stubs.runs.RunStream(runs_pb2.CreateRunRequest(assistant_id="no_such_graph")))
    assert (by_name.code, by_name.reason) == (grpc.StatusCode.NOT_FOUND, "ASSISTANT_NOT_FOUND")
    assert by_name.resource == ("assistant", "no_such_graph")
    got = await failure(lambda: stubs.assistants.GetAssistant(assistants_pb2.GetAssistantRequest(assistant_id="nope")))
    assert (got.code, got.reason) == (grpc.StatusCode.NOT_FOUND, "ASSISTANT_NOT_FOUND")


async def test_unknown_run_names_the_run_and_its_thread(stubs: Stubs) -> None:
    thread_id, run_id = await new_thread(stubs), str(uuid.uuid4())
    got = await failure(lambda: stubs.runs.GetRun(runs_pb2.GetRunRequest(thread_id=thread_id, run_id=run_id)))
    assert (got.code, got.reason) == (grpc.StatusCode.NOT_FOUND, "RUN_NOT_FOUND")
    assert got.metadata == {"run_id": run_id, "thread_id": thread_id}
    assert got.resource == ("run", run_id)


async def test_unknown_cron(stubs: Stubs) -> None:
    crons = crons_pb2_grpc.CronsServiceStub(stubs.channel)
    missing = str(uuid.uuid4())
    got = await failure(lambda: crons.GetCron(crons_pb2.GetCronRequest(cron_id=missing)))
    assert (got.code, got.reason, got.resource) == (grpc.StatusCode.NOT_FOUND, "CRON_NOT_FOUND", ("cron", missing))
    assert got.metadata == {"cron_id": missing}


async def test_a_malformed_thread_id_is_a_field_violation(stubs: Stubs) -> None:
    got = await failure(lambda: stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id="not-a-uuid")))
    assert (got.code, got.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert [name for name, _ in got.violations] == ["thread_id"]
    assert "not-a-uuid" in got.violations[0][1]


async def test_a_bad_stream_mode_is_named_by_its_index(stubs: Stubs) -> None:
    unknown: Any = 99
    request = runs_pb2.CreateRunRequest(assistant_id="agent", stream_mode=[runs_pb2.STREAM_MODE_VALUES, unknown])
    got = await failure(lambda: stubs.runs.RunStream(request))
    assert (got.code, got.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert [name for name, _ in got.violations] == ["stream_mode[1]"]


async def test_an_unknown_event_id(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    run = await stubs.runs.CreateRun(create("agent", thread_id, {"topic": "x"}))
    # An event id of another run (its "<ms>" is not this run's).
    request = runs_pb2.JoinRunStreamRequest(thread_id=thread_id, run_id=run.run_id, last_event_id="1-5")
    got = await failure(lambda: stubs.runs.JoinRunStream(request))
    assert (got.code, got.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "EVENT_ID_UNKNOWN")
    assert [name for name, _ in got.violations] == ["last_event_id"]
    assert got.metadata == {"run_id": run.run_id}


async def test_a_busy_thread_refuses_a_run_that_asks_to_reject(stubs: Stubs) -> None:
    thread_id = await new_thread(stubs)
    first = await stubs.runs.CreateRun(create("slow", thread_id, {"n": 100, "delay": 0.02}))
    reject = create("agent", thread_id, {"topic": "x"}, multitask_strategy=runs_pb2.MULTITASK_STRATEGY_REJECT)
    got = await failure(lambda: stubs.runs.CreateRun(reject))
    assert (got.code, got.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "THREAD_BUSY")
    assert got.metadata == {"thread_id": thread_id}
    await stubs.runs.CancelRun(runs_pb2.CancelRunRequest(thread_id=thread_id, run_id=first.run_id))


async def test_an_unknown_method_and_a_session_without_open(stubs: Stubs) -> None:
    method = stubs.channel.unary_unary("/langgraph.gateway.v1.ThreadsService/NoSuchMethod")
    got = await failure(lambda: method(b""))
    assert (got.code, got.reason) == (grpc.StatusCode.UNIMPLEMENTED, "UNIMPLEMENTED")

    sessions = sessions_pb2_grpc.SessionsServiceStub(stubs.channel)

    async def requests() -> Any:
        yield sessions_pb2.SessionRequest(id=1, get_tree=sessions_pb2.GetAgentTree())

    got = await failure(lambda: sessions.ThreadSession(requests()))
    assert (got.code, got.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert [name for name, _ in got.violations] == ["open"]


async def test_a_full_queue_says_when_to_retry_and_expired_events_say_so(tmp_path: Path) -> None:
    args = ("--max-queued-runs", "2", "--event-retention", "1")
    async with own_gateway(tmp_path / "db.sqlite", *args) as stubs:
        thread_id = await new_thread(stubs)
        for _ in range(2):
            await stubs.runs.CreateRun(create("slow", thread_id, {"n": 50, "delay": 0.02}))
        got = await failure(lambda: stubs.runs.CreateRun(create("agent", thread_id, {"topic": "x"})))
        assert (got.code, got.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RUN_QUEUE_FULL")
        assert got.metadata == {"thread_id": thread_id}
        assert got.retry_after is not None and got.retry_after > 0

        other = await new_thread(stubs)
        done = await stubs.runs.WaitRun(create("agent", other, {"topic": "x"}, stream_resumable=True))
        run_id = done.run.run_id
        replay = runs_pb2.JoinRunStreamRequest(thread_id=other, run_id=run_id, last_event_id="0")
        for _ in range(100):  # until the retention of 1 s has pruned the run's events
            try:
                async for _ in stubs.runs.JoinRunStream(replay):
                    pass
            except grpc.aio.AioRpcError as err:
                got = details(err)
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the events were kept past their retention")
        assert (got.code, got.reason) == (grpc.StatusCode.OUT_OF_RANGE, "EVENTS_EXPIRED"), got
        assert got.metadata == {"run_id": run_id}


async def test_a_missing_api_key_is_unauthenticated(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path / "db.sqlite", extra_args=("--api-key", "k3y")).start()
    try:
        async with grpc.aio.insecure_channel(proc.grpc_target) as channel:
            stubs = make_stubs(channel)
            got = await failure(lambda: stubs.threads.CreateThread(threads_pb2.CreateThreadRequest()))
            assert (got.code, got.reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
    finally:
        proc.kill()


async def _refused_while_draining(call: Callable[[], Awaitable[Any]]) -> grpc.aio.AioRpcError:
    for _ in range(100):
        try:
            await call()
        except grpc.aio.AioRpcError as err:
            return err
        await asyncio.sleep(0.05)
    raise AssertionError("the draining gateway kept taking runs")


async def test_a_draining_gateway_says_it_is_shutting_down_and_when_to_retry(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path / "db.sqlite").start()  # --grace 3
    try:
        async with grpc.aio.insecure_channel(proc.grpc_target) as channel:
            stubs = make_stubs(channel)
            health = health_pb2_grpc.HealthStub(channel)
            thread_id = await new_thread(stubs)
            # A live run holds the drain open for the grace period.
            call = stubs.runs.RunStream(create("slow", thread_id, {"n": 1000, "delay": 0.02}, stream_mode=["custom"]))
            await call.read()
            proc.proc.send_signal(15)  # type: ignore[union-attr]
            watch = health.Watch(health_pb2.HealthCheckRequest())
            async for answer in watch:
                if answer.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    break
            err = await _refused_while_draining(lambda: stubs.runs.WaitRun(create("agent", "", {"topic": "x"})))
            got = details(err)
            assert (got.code, got.reason) == (grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN")
            assert got.retry_after is not None and got.retry_after > 0
            call.cancel()
    finally:
        proc.kill()


def test_every_reason_the_gateway_gives_is_documented() -> None:
    root = Path(__file__).resolve().parents[2]
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", (root / "docs" / "errors.md").read_text(), re.MULTILINE))
    classes: list[type[GatewayError]] = [GatewayError]
    for cls in classes:
        classes.extend(cls.__subclasses__())
    given = {cls.reason for cls in classes}
    sources = [path.read_text() for path in (root / "gateway").rglob("*.py")]
    resources = {kind for text in sources for kind in re.findall(r'resource="(\w+)"', text)}
    given |= {f"{kind.upper()}_NOT_FOUND" for kind in resources}
    # The reasons the gRPC edge names itself: interceptors, sessions, health, Connect.
    edge = [path.read_text() for path in (root / "gateway" / "rpc").glob("*.py")]
    given |= {reason for text in edge for reason in re.findall(r'"([A-Z][A-Z_]+)"', text)} - {"POST", "GET"}
    given |= {"INVALID_ARGUMENT", "UNIMPLEMENTED", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "INTERNAL"}
    assert "THREAD_NOT_FOUND" in given and "SHUTTING_DOWN" in given
    assert given <= documented, given - documented
