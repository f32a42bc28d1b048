"""SessionsService.ThreadSession through the generated stubs: commands and typed events on one
bidirectional call, with the channels, namespaces, lifecycle and resume of the protocol."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from langgraph.gateway.v1 import runs_pb2, sessions_pb2, sessions_pb2_grpc

from tests._server import GatewayProcess
from tests.rpc.test_grpcurl import GRPCURL, json_stream

TIMEOUT = 30


class Session:
    """One ThreadSession call: commands go in as the test sends them; responses are read in order."""

    def __init__(self, stub: sessions_pb2_grpc.SessionsServiceStub, thread_id: str) -> None:
        self._queue: asyncio.Queue[sessions_pb2.SessionRequest | None] = asyncio.Queue()
        self.call = stub.ThreadSession(self._requests())
        self.thread_id = thread_id
        self._id = 0
        self.events: list[sessions_pb2.ProtocolEvent] = []

    async def _requests(self) -> AsyncIterator[sessions_pb2.SessionRequest]:
        while (request := await self._queue.get()) is not None:
            yield request

    def send(self, **command: Any) -> int:
        self._id += 1
        self._queue.put_nowait(sessions_pb2.SessionRequest(id=self._id, **command))
        return self._id

    def done_sending(self) -> None:
        self._queue.put_nowait(None)

    async def read(self) -> sessions_pb2.SessionResponse:
        async with asyncio.timeout(TIMEOUT):
            response = await self.call.read()
        assert response is not grpc.aio.EOF
        if response.HasField("events"):
            self.events.extend(response.events.events)
        return response  # type: ignore[no-any-return]

    async def reply(self, cmd_id: int) -> sessions_pb2.SessionResponse:
        """The command's result or error; events that come first are kept in `events`."""
        while True:
            response = await self.read()
            if response.HasField("result") and response.result.id == cmd_id:
                return response
            if response.HasField("error") and response.error.id == cmd_id:
                return response

    async def until_terminal(self) -> list[sessions_pb2.ProtocolEvent]:
        start = len(self.events)
        while True:
            for event in self.events[start:]:
                if (
                    event.HasField("lifecycle")
                    and not event.namespace
                    and event.lifecycle.status
                    not in (
                        sessions_pb2.AGENT_STATUS_RUNNING,
                        sessions_pb2.AGENT_STATUS_STARTED,
                    )
                ):
                    return self.events[start:]
            await self.read()


@pytest.fixture
async def session(protocol_gateway: GatewayProcess) -> AsyncIterator[Session]:
    async with grpc.aio.insecure_channel(protocol_gateway.grpc_target) as channel:
        s = Session(sessions_pb2_grpc.SessionsServiceStub(channel), str(uuid.uuid4()))
        s.send(open=sessions_pb2.OpenSession(thread_id=s.thread_id))
        opened = await s.reply(1)
        assert opened.result.opened.thread_id == s.thread_id
        yield s
        s.call.cancel()


def _start(agent: str, graph_input: dict[str, Any]) -> sessions_pb2.StartRun:
    start = sessions_pb2.StartRun(assistant_id=agent)
    json_format.ParseDict(graph_input, start.input)
    return start


def _data(event: sessions_pb2.ProtocolEvent) -> Any:
    return json.loads(event.data_json)


async def test_agent_streams_typed_events(session: Session) -> None:
    sub = session.send(subscribe=sessions_pb2.Subscribe(channels=["lifecycle", "messages", "tools"]))
    subscribed = await session.reply(sub)
    sub_id = subscribed.result.subscribed.subscription_id
    start = session.send(
        start_run=_start("tool_agent", {"messages": [{"role": "user", "content": "weather in Paris"}]})
    )
    started = await session.reply(start)
    run_id = started.result.run_started.run_id
    assert run_id and started.result.applied_through_seq >= 0
    events = await session.until_terminal()
    methods = {sessions_pb2.EventMethod.Name(e.method) for e in events}
    assert methods == {"EVENT_METHOD_LIFECYCLE", "EVENT_METHOD_MESSAGES", "EVENT_METHOD_TOOLS"}
    assert all(e.subscription_id == sub_id and e.event_id == str(e.seq) for e in events)
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert all(e.seq > started.result.applied_through_seq for e in events)
    lifecycle = [(e.lifecycle.status, e.lifecycle.graph_name) for e in events if e.HasField("lifecycle")]
    assert lifecycle == [
        (sessions_pb2.AGENT_STATUS_RUNNING, "tool_agent"),
        (sessions_pb2.AGENT_STATUS_COMPLETED, "tool_agent"),
    ]
    deltas = [
        _data(e)["delta"]["text"]
        for e in events
        if _data(e).get("event") == "content-block-delta" and _data(e)["delta"]["type"] == "text-delta"
    ]
    assert "".join(deltas) == "Let me check the weather.The weather in Paris is sunny."
    assert [e.node for e in events if e.method == sessions_pb2.EVENT_METHOD_MESSAGES][0] == "agent"
    tools = [_data(e)["event"] for e in events if e.method == sessions_pb2.EVENT_METHOD_TOOLS]
    assert tools == ["tool-started", "tool-finished"]

    tree = await session.reply(session.send(get_tree=sessions_pb2.GetAgentTree(run_id=run_id)))
    assert tree.result.tree.graph_name == "tool_agent"
    assert tree.result.tree.status == sessions_pb2.AGENT_STATUS_COMPLETED


async def test_interrupt_answered_in_the_session(session: Session) -> None:
    await session.reply(session.send(subscribe=sessions_pb2.Subscribe(channels=["lifecycle", "input"])))
    await session.reply(session.send(start_run=_start("nested", {"topic": "cats"})))
    events = await session.until_terminal()
    requested = [e for e in events if e.HasField("input_requested")]
    assert len(requested) == 1 and requested[0].namespace[0].startswith("writer:")
    assert _data(requested[0])["value"] == {"joke": "a joke from inside the subgraph"}
    statuses = [(list(e.namespace) != [], e.lifecycle.status) for e in events if e.HasField("lifecycle")]
    # The subgraph starts and ends inside the run; the run's own end comes last.
    assert statuses == [
        (False, sessions_pb2.AGENT_STATUS_RUNNING),
        (True, sessions_pb2.AGENT_STATUS_STARTED),
        (True, sessions_pb2.AGENT_STATUS_INTERRUPTED),
        (False, sessions_pb2.AGENT_STATUS_INTERRUPTED),
    ]
    answer = sessions_pb2.RespondToInterrupts()
    entry = answer.responses.add(
        interrupt_id=requested[0].input_requested.interrupt_id, namespace=requested[0].namespace
    )
    entry.response.string_value = "approved"
    resumed = await session.reply(session.send(respond=answer))
    assert resumed.result.run_started.run_id
    rest = await session.until_terminal()
    assert rest[-1].lifecycle.status == sessions_pb2.AGENT_STATUS_COMPLETED
    again = await session.reply(session.send(respond=answer))
    assert again.error.code == "no_such_interrupt"


async def test_namespace_filter_and_depth(session: Session) -> None:
    root_only = sessions_pb2.Subscribe(channels=["values"], namespaces=[sessions_pb2.Namespace()], depth=0)
    inner = sessions_pb2.Subscribe(channels=["values"], namespaces=[sessions_pb2.Namespace(segments=["node_2"])])
    first = (await session.reply(session.send(subscribe=root_only))).result.subscribed.subscription_id
    second = (await session.reply(session.send(subscribe=inner))).result.subscribed.subscription_id
    await session.reply(session.send(start_run=_start("subgraphs", {"foo": "foo"})))
    session.done_sending()
    while True:  # the call ends once the run has and both subscriptions sent all of it
        async with asyncio.timeout(TIMEOUT):
            response = await session.call.read()
        if response is grpc.aio.EOF:
            break
        session.events.extend(response.events.events)
    by_sub = {
        sub: [(list(e.namespace), _data(e)) for e in session.events if e.subscription_id == sub]
        for sub in (first, second)
    }
    assert [data for ns, data in by_sub[first]] == [{"foo": "foo"}, {"foo": "hi! foo"}, {"foo": "hi! foobar"}]
    assert all(ns == [] for ns, _ in by_sub[first])
    assert [data for _, data in by_sub[second]] == [
        {"foo": "hi! foo"},
        {"foo": "hi! foo", "bar": "bar"},
        {"foo": "hi! foobar", "bar": "bar"},
    ]
    assert all(ns[0].startswith("node_2:") for ns, _ in by_sub[second])
    assert await session.call.code() == grpc.StatusCode.OK


async def test_resume_with_since_and_unsubscribe(session: Session) -> None:
    await session.reply(session.send(start_run=_start("slow", {"n": 20, "delay": 0.01})))
    first = await session.reply(session.send(subscribe=sessions_pb2.Subscribe(channels=["custom", "lifecycle"])))
    await session.until_terminal()
    everything = list(session.events)
    sub_id = first.result.subscribed.subscription_id
    assert (await session.reply(session.send(unsubscribe=sessions_pb2.Unsubscribe(subscription_id=sub_id)))).HasField(
        "result"
    )
    session.events.clear()
    resume = sessions_pb2.Subscribe(channels=["custom", "lifecycle"], since=everything[9].seq)
    resumed = await session.reply(session.send(subscribe=resume))
    # What the thread had is replayed before the result.
    assert resumed.result.subscribed.replayed_events == len(everything) - 10
    assert [e.event_id for e in session.events] == [e.event_id for e in everything[10:]]


async def test_command_errors_keep_the_session(session: Session) -> None:
    bad = await session.reply(session.send(subscribe=sessions_pb2.Subscribe(channels=["nope"])))
    assert bad.error.code == "invalid_argument" and "nope" in bad.error.message
    gone = await session.reply(session.send(unsubscribe=sessions_pb2.Unsubscribe(subscription_id="sub-9")))
    assert gone.error.code == "no_such_subscription"
    unknown = await session.reply(session.send(start_run=_start("nope", {})))
    assert unknown.error.code == "invalid_argument" and "nope" in unknown.error.message
    nothing = await session.reply(session.send(cancel=sessions_pb2.CancelRuns()))
    assert nothing.error.code == "not_found"  # no run has created the thread yet
    started = await session.reply(session.send(start_run=_start("slow", {"n": 100, "delay": 0.05})))
    cancel = sessions_pb2.CancelRuns(run_id=started.result.run_started.run_id, action=runs_pb2.CANCEL_ACTION_INTERRUPT)
    cancelled = await session.reply(session.send(cancel=cancel))
    assert list(cancelled.result.cancelled.run_ids) == [started.result.run_started.run_id]


async def _ends(session: Session) -> None:
    """The call completes: every response read, then OK."""
    async with asyncio.timeout(TIMEOUT):
        while (response := await session.call.read()) is not grpc.aio.EOF:
            assert not response.HasField("error"), response
            session.events.extend(response.events.events)
        assert await session.call.code() == grpc.StatusCode.OK


async def test_a_half_closed_session_ends(session: Session) -> None:
    # Nothing asked: no run has created the thread, and none will.
    session.done_sending()
    await _ends(session)


async def test_a_half_closed_session_waiting_for_its_thread_ends(session: Session) -> None:
    subscribed = await session.reply(session.send(subscribe=sessions_pb2.Subscribe(channels=["lifecycle"])))
    assert subscribed.result.HasField("subscribed")
    session.done_sending()
    await _ends(session)


async def test_a_half_closed_session_ends_after_its_runs(session: Session) -> None:
    await session.reply(session.send(subscribe=sessions_pb2.Subscribe(channels=["lifecycle"])))
    await session.reply(session.send(start_run=_start("slow", {"n": 5, "delay": 0.01})))
    session.done_sending()
    await _ends(session)
    statuses = [e.lifecycle.status for e in session.events if not e.namespace]
    assert statuses[-1] == sessions_pb2.AGENT_STATUS_COMPLETED


async def test_a_session_must_open_first(protocol_gateway: GatewayProcess) -> None:
    async with grpc.aio.insecure_channel(protocol_gateway.grpc_target) as channel:
        stub = sessions_pb2_grpc.SessionsServiceStub(channel)
        call = stub.ThreadSession(iter([sessions_pb2.SessionRequest(id=1, get_tree=sessions_pb2.GetAgentTree())]))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for _ in call:
                pass
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        call = stub.ThreadSession(
            iter([sessions_pb2.SessionRequest(id=1, open=sessions_pb2.OpenSession(thread_id="x"))])
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for _ in call:
                pass
        assert "UUID" in (raised.value.details() or "")


def test_grpcurl_streams_a_session(protocol_gateway: GatewayProcess) -> None:
    # docs/thread-protocol.md's example: the session's commands as JSON messages; the call ends with the run.
    thread_id = str(uuid.uuid4())
    messages = [
        {"id": 1, "open": {"thread_id": thread_id}},
        {"id": 2, "subscribe": {"channels": ["lifecycle", "input"]}},
        {"id": 3, "start_run": {"assistant_id": "approval", "input": {"action": "deploy"}}},
    ]
    result = subprocess.run(
        [GRPCURL, "-plaintext", "-d", " ".join(json.dumps(m) for m in messages), protocol_gateway.grpc_target,
         "langgraph.gateway.v1.SessionsService/ThreadSession"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    responses = json_stream(result.stdout)
    assert [list(r["result"])[1] for r in responses[:3]] == ["opened", "subscribed", "run_started"]
    events = [e for r in responses[3:] for e in r["events"]["events"]]
    assert [e["method"] for e in events] == [
        "EVENT_METHOD_LIFECYCLE",
        "EVENT_METHOD_INPUT_REQUESTED",
        "EVENT_METHOD_LIFECYCLE",
    ]
    assert events[-1]["lifecycle"] == {"status": "AGENT_STATUS_INTERRUPTED", "graph_name": "approval"}
