"""langgraph.json's custom auth over gRPC: each call's metadata is authenticated as an HTTP
request's headers are, with two users and an anonymous client on every RPC that reaches a
thread, run or assistant: UNAUTHENTICATED without valid credentials, PERMISSION_DENIED where a
handler refuses, NOT_FOUND for another user's thread or run (no event of its stream comes
out), searches of one's own. Health checks stay open; reflection is open unless --reflection
says otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from langgraph.gateway.v1 import assistants_pb2, runs_pb2, sessions_pb2, sessions_pb2_grpc, threads_pb2

from tests._auth import ALICE, BANNED, BOB, CAROL, accepted, auth_gateway
from tests._server import GatewayProcess
from tests.conftest import BACKENDS, Stubs, backend_args, make_stubs

Metadata = tuple[tuple[str, str], ...]


def md(headers: dict[str, str]) -> Metadata:
    return tuple(headers.items())


A, B, C = md(ALICE), md(BOB), md(CAROL)


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, Path]]:
    """The auth gateway on each backend: their storage applies the filters."""
    with backend_args(request.param) as args:
        proc, canary = auth_gateway(tmp_path_factory.mktemp("rpc-auth"), *args)
        yield proc, canary
        proc.kill()


@pytest_asyncio.fixture
async def stubs(served: tuple[GatewayProcess, Path]) -> AsyncIterator[Stubs]:
    async with grpc.aio.insecure_channel(served[0].grpc_target) as channel:
        yield make_stubs(channel)


async def code_of(call: Awaitable[Any]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def streamed(call: Any) -> tuple[grpc.StatusCode, list[Any]]:
    """The code a streaming call ended with, and the messages it sent before."""
    received = []
    try:
        async for message in call:
            received.append(message)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), received
    return grpc.StatusCode.OK, received


async def own_thread(stubs: Stubs) -> tuple[str, str]:
    thread = await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest(), metadata=A)
    request = runs_pb2.CreateRunRequest(assistant_id="whoami", thread_id=thread.thread_id)
    request.input.struct_value.SetInParent()
    result = await stubs.runs.WaitRun(request, metadata=A)
    return thread.thread_id, result.run.run_id


def canary_run(thread_id: str = "", note: str = "intruder") -> runs_pb2.CreateRunRequest:
    request = runs_pb2.CreateRunRequest(assistant_id="canary", thread_id=thread_id)
    request.input.struct_value.update({"note": note})
    return request


UnaryCall = Callable[[Stubs, str, str, Metadata], Awaitable[Any]]
UNARY: dict[str, UnaryCall] = {
    "GetThread": lambda s, t, r, m: s.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=t), metadata=m),
    "GetThreadState": lambda s, t, r, m: s.threads.GetThreadState(
        threads_pb2.GetThreadStateRequest(thread_id=t), metadata=m
    ),
    "GetThreadHistory": lambda s, t, r, m: s.threads.GetThreadHistory(
        threads_pb2.GetThreadHistoryRequest(thread_id=t), metadata=m
    ),
    "CreateRun": lambda s, t, r, m: s.runs.CreateRun(canary_run(t), metadata=m),
    "WaitRun": lambda s, t, r, m: s.runs.WaitRun(canary_run(t), metadata=m),
    "JoinRun": lambda s, t, r, m: s.runs.JoinRun(runs_pb2.JoinRunRequest(thread_id=t, run_id=r), metadata=m),
    "GetRun": lambda s, t, r, m: s.runs.GetRun(runs_pb2.GetRunRequest(thread_id=t, run_id=r), metadata=m),
    "ListRuns": lambda s, t, r, m: s.runs.ListRuns(runs_pb2.ListRunsRequest(thread_id=t), metadata=m),
    "CancelRun": lambda s, t, r, m: s.runs.CancelRun(runs_pb2.CancelRunRequest(thread_id=t, run_id=r), metadata=m),
    "DeleteThread": lambda s, t, r, m: s.threads.DeleteThread(threads_pb2.DeleteThreadRequest(thread_id=t), metadata=m),
}


def _note(metadata: Metadata) -> str:
    return "owner" if metadata == A else "intruder"


STREAMING: dict[str, Callable[[Stubs, str, str, Metadata], Any]] = {
    "RunStream": lambda s, t, r, m: s.runs.RunStream(canary_run(t, _note(m)), metadata=m),
    "RunStreamBatch": lambda s, t, r, m: s.runs.RunStreamBatch(canary_run(t, _note(m)), metadata=m),
    "JoinRunStream": lambda s, t, r, m: s.runs.JoinRunStream(
        runs_pb2.JoinRunStreamRequest(thread_id=t, run_id=r, last_event_id="0"), metadata=m
    ),
    "JoinRunStreamBatch": lambda s, t, r, m: s.runs.JoinRunStreamBatch(
        runs_pb2.JoinRunStreamRequest(thread_id=t, run_id=r, last_event_id="0"), metadata=m
    ),
}


@pytest.mark.parametrize("rpc", list(UNARY))
async def test_another_users_thread_is_not_found_and_anonymous_calls_are_refused(
    stubs: Stubs, served: tuple[GatewayProcess, Path], rpc: str
) -> None:
    thread_id, run_id = await own_thread(stubs)
    call = UNARY[rpc]
    assert await code_of(call(stubs, thread_id, run_id, ())) == grpc.StatusCode.UNAUTHENTICATED
    assert await code_of(call(stubs, thread_id, run_id, B)) == grpc.StatusCode.NOT_FOUND
    thread = await stubs.threads.GetThread(threads_pb2.GetThreadRequest(thread_id=thread_id), metadata=A)
    assert thread.metadata["owner"] == "alice"
    listed = await stubs.runs.ListRuns(runs_pb2.ListRunsRequest(thread_id=thread_id), metadata=A)
    assert [r.run_id for r in listed.runs] == [run_id]
    assert "intruder" not in served[1].read_text()


@pytest.mark.parametrize("rpc", list(STREAMING))
async def test_a_stream_of_another_users_thread_or_run_sends_nothing(
    stubs: Stubs, served: tuple[GatewayProcess, Path], rpc: str
) -> None:
    thread_id, run_id = await own_thread(stubs)
    call = STREAMING[rpc]
    assert await streamed(call(stubs, thread_id, run_id, ())) == (grpc.StatusCode.UNAUTHENTICATED, [])
    assert await streamed(call(stubs, thread_id, run_id, B)) == (grpc.StatusCode.NOT_FOUND, [])
    code, events = await streamed(call(stubs, thread_id, run_id, A))
    assert code == grpc.StatusCode.OK and events
    assert "intruder" not in served[1].read_text()


async def test_a_live_run_of_another_user_is_not_joined(stubs: Stubs) -> None:
    thread = await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest(), metadata=A)
    request = runs_pb2.CreateRunRequest(
        assistant_id="slow", thread_id=thread.thread_id, stream_mode=[runs_pb2.STREAM_MODE_CUSTOM]
    )
    request.input.struct_value.update({"n": 30, "delay": 0.05})
    run = await stubs.runs.CreateRun(request, metadata=A)
    join = runs_pb2.JoinRunStreamRequest(thread_id=thread.thread_id, run_id=run.run_id, last_event_id="0")
    assert await streamed(stubs.runs.JoinRunStream(join, metadata=B)) == (grpc.StatusCode.NOT_FOUND, [])
    code, events = await streamed(stubs.runs.JoinRunStream(join, metadata=A))
    assert code == grpc.StatusCode.OK
    assert [e.WhichOneof("event") for e in events].count("custom") == 30


def _session(target: str, thread_id: str, metadata: Metadata, *, start: bool) -> tuple[grpc.StatusCode, list[Any], str]:
    """A ThreadSession that sends open, then start_run without waiting for the result if
    `start`, and half-closes: the code it ended with, what came before, and the details.

    On grpc's blocking channel: grpc.aio's loses the server's status when a message it writes
    fails because the server has ended the call meanwhile (the open refused), and reports its
    own INTERNAL "Internal error from Core" instead (grpc/grpc#36066;
    tests/rpc/test_io_loop.py's test_a_bidirectional_call_refused_* shows both)."""

    def requests() -> Iterator[sessions_pb2.SessionRequest]:
        yield sessions_pb2.SessionRequest(id=1, open=sessions_pb2.OpenSession(thread_id=thread_id))
        if start:
            start_run = sessions_pb2.StartRun(assistant_id="canary")
            start_run.input.struct_value.update({"note": "intruder"})
            yield sessions_pb2.SessionRequest(id=2, start_run=start_run)

    with grpc.insecure_channel(target) as channel:
        call = sessions_pb2_grpc.SessionsServiceStub(channel).ThreadSession(requests(), metadata=metadata)
        received: list[Any] = []
        try:
            received.extend(call)
        except grpc.RpcError as exc:
            return exc.code(), received, f"{exc.details()} ({exc.debug_error_string()})"
        return grpc.StatusCode.OK, received, ""


async def test_a_thread_session_on_another_users_thread_is_not_found(
    stubs: Stubs, served: tuple[GatewayProcess, Path]
) -> None:
    thread_id, _ = await own_thread(stubs)
    target = served[0].grpc_target
    code, _, details = await asyncio.to_thread(_session, target, thread_id, (), start=False)
    assert code == grpc.StatusCode.UNAUTHENTICATED, details
    code, responses, details = await asyncio.to_thread(_session, target, thread_id, B, start=True)
    # Bob's session on Alice's thread is refused as every other call on it is: NOT_FOUND, and
    # nothing of her thread comes (a thread that does not exist yet may still be opened); the
    # start_run sent behind the open never runs.
    gateway_log = "".join(served[0].stderr_lines[-20:])
    assert (code, responses) == (grpc.StatusCode.NOT_FOUND, []), f"{details}\n{gateway_log}"
    assert "intruder" not in served[1].read_text()


async def test_search_shows_only_the_callers_threads(stubs: Stubs) -> None:
    mine = {(await own_thread(stubs))[0] for _ in range(2)}
    theirs = (await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest(), metadata=B)).thread_id
    found = await stubs.threads.SearchThreads(threads_pb2.SearchThreadsRequest(limit=1000), metadata=A)
    ids = {t.thread_id for t in found.threads}
    assert mine <= ids and theirs not in ids and all(t.metadata["owner"] == "alice" for t in found.threads)
    assert await code_of(stubs.threads.SearchThreads(threads_pb2.SearchThreadsRequest())) == (
        grpc.StatusCode.UNAUTHENTICATED
    )


async def test_handlers_refuse_with_permission_denied(stubs: Stubs) -> None:
    thread = await stubs.threads.CreateThread(threads_pb2.CreateThreadRequest(), metadata=C)
    delete = threads_pb2.DeleteThreadRequest(thread_id=thread.thread_id)
    try:
        await stubs.threads.DeleteThread(delete, metadata=C)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.PERMISSION_DENIED and exc.details() == "Forbidden"
    else:
        raise AssertionError("Carol may not delete")
    banned = stubs.threads.CreateThread(threads_pb2.CreateThreadRequest(), metadata=md(BANNED))
    assert await code_of(banned) == grpc.StatusCode.PERMISSION_DENIED


async def test_assistants_need_credentials(stubs: Stubs) -> None:
    search = assistants_pb2.SearchAssistantsRequest(graph_id="whoami")
    assert await code_of(stubs.assistants.SearchAssistants(search)) == grpc.StatusCode.UNAUTHENTICATED
    found = await stubs.assistants.SearchAssistants(search, metadata=B)
    get = assistants_pb2.GetAssistantRequest(assistant_id=found.assistants[0].assistant_id)
    assert await code_of(stubs.assistants.GetAssistant(get)) == grpc.StatusCode.UNAUTHENTICATED
    assert (await stubs.assistants.GetAssistant(get, metadata=B)).graph_id == "whoami"


async def test_the_caller_reaches_the_graphs_config(stubs: Stubs) -> None:
    request = runs_pb2.CreateRunRequest(assistant_id="whoami")
    request.input.struct_value.SetInParent()
    result = await stubs.runs.WaitRun(request, metadata=(*A, ("x-tenant", "acme")))
    assert result.result_json == (
        '{"user_id":"alice","permissions":["threads:delete"],'
        '"user":{"identity":"alice","display_name":"Alice","tenant":"acme"}}'
    )


async def _reflection_code(
    channel: grpc.aio.Channel, metadata: Metadata = (), *, version: str = "v1alpha"
) -> grpc.StatusCode:
    # v1's messages are v1alpha's under another package: the same bytes.
    info = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )

    async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    code, _ = await streamed(info(ask(), metadata=metadata))
    return code


async def test_health_and_reflection_stay_open(stubs: Stubs) -> None:
    status = await health_pb2_grpc.HealthStub(stubs.channel).Check(health_pb2.HealthCheckRequest())
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    assert await _reflection_code(stubs.channel) == grpc.StatusCode.OK
    assert await _reflection_code(stubs.channel, version="v1") == grpc.StatusCode.OK


async def test_reflection_can_need_credentials_or_be_off(tmp_path: Path) -> None:
    for mode, anonymous, alice in (
        ("auth", grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.OK),
        ("off", grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNIMPLEMENTED),
    ):
        folder = tmp_path / mode
        folder.mkdir()
        proc, _ = auth_gateway(folder, "--reflection", mode)
        try:
            async with grpc.aio.insecure_channel(proc.grpc_target) as channel:
                for version in ("v1", "v1alpha"):
                    assert await _reflection_code(channel, version=version) == anonymous, version
                    assert await _reflection_code(channel, A, version=version) == alice, version
                health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
                assert health.status == health_pb2.HealthCheckResponse.SERVING
        finally:
            proc.kill()


_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    authorization=st.one_of(st.none(), _TEXT, st.builds(lambda t: f"Bearer {t}", _TEXT)),
    extra=st.dictionaries(st.sampled_from(["x-api-key", "cookie", "x-tenant", "x-user"]), _TEXT, max_size=3),
)
async def test_fuzzed_metadata_never_reaches_a_graph(
    stubs: Stubs, served: tuple[GatewayProcess, Path], authorization: str | None, extra: dict[str, str]
) -> None:
    assume(not accepted(authorization))
    metadata = (*extra.items(), *((("authorization", authorization),) if authorization is not None else ()))
    request = canary_run()
    request.input.struct_value.update({"note": "fuzz"})
    code = await code_of(stubs.runs.WaitRun(request, metadata=metadata))
    assert code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    code, events = await streamed(stubs.runs.RunStream(request, metadata=metadata))
    assert code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED) and events == []
    assert "fuzz" not in served[1].read_text()


async def test_with_the_api_key_reflection_is_open_unless_it_needs_auth(tmp_path: Path) -> None:
    for mode, anonymous in (("open", grpc.StatusCode.OK), ("auth", grpc.StatusCode.UNAUTHENTICATED)):
        proc = GatewayProcess(
            tmp_path / f"{mode}.sqlite", extra_args=("--api-key", "k3y", "--reflection", mode)
        ).start()
        try:
            async with grpc.aio.insecure_channel(proc.grpc_target) as channel:
                assert await _reflection_code(channel) == anonymous
                assert await _reflection_code(channel, (("x-api-key", "k3y"),)) == grpc.StatusCode.OK
                create = make_stubs(channel).threads.CreateThread(threads_pb2.CreateThreadRequest())
                assert await code_of(create) == grpc.StatusCode.UNAUTHENTICATED
        finally:
            proc.kill()
