"""One client per way of running a graph, each timing a run the same way: from the request to
the first event of the requested mode, and to the end of the stream, counting those events.
A run is stateless unless it is given a thread (made beforehand with `create_thread`): then it
is a new run on that thread, which starts from the thread's latest checkpoint and writes its own.

SSE is read with one httpx client for both servers and parsed here, cheaply: only `event:`
lines are looked at, and data lines are skipped without being decoded or kept whole."""

from __future__ import annotations

import asyncio
import json
import struct
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import grpc
import httpx
from google.protobuf import struct_pb2
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.gateway.v1 import runs_pb2, runs_pb2_grpc, threads_pb2, threads_pb2_grpc
from langgraph.pregel import Pregel
from langgraph.types import StreamMode

from bench import graphs

# The 50-node chain needs more supersteps than LangGraph's default limit of 25.
RUN_CONFIG = {"recursion_limit": 100}
RUN_TIMEOUT = 300.0
GRPC_OPTIONS = (("grpc.max_receive_message_length", 64 * 1024 * 1024),)
_GRPC_MODES = {
    "values": runs_pb2.STREAM_MODE_VALUES,
    "updates": runs_pb2.STREAM_MODE_UPDATES,
    "custom": runs_pb2.STREAM_MODE_CUSTOM,
}


@dataclass
class Timing:
    start: float
    first: float | None = None
    end: float = 0.0
    events: int = 0
    # Events that arrived together with the first one (a batched transport delivers several).
    at_first: int = 0
    error: str | None = None

    @property
    def latency(self) -> float:
        return self.end - self.start

    @property
    def to_first(self) -> float | None:
        return None if self.first is None else self.first - self.start


class Client(Protocol):
    name: str

    async def run(
        self, graph: str, graph_input: dict[str, Any], mode: str, *, thread_id: str | None = None
    ) -> Timing: ...

    async def create_thread(self) -> str:
        """A new, empty thread, for runs with a `thread_id`."""
        ...

    async def hold(
        self, graph: str, graph_input: dict[str, Any], opened: Callable[[], None], stop: asyncio.Event
    ) -> None:
        """Opens a stream, calls `opened` once the server has answered, and closes it on `stop`."""
        ...

    async def aclose(self) -> None: ...


async def _timed(run: Any, timing: Timing) -> Timing:
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            await run
    except Exception as exc:
        timing.error = f"{type(exc).__name__}: {exc}"[:300]
    timing.end = time.perf_counter()
    return timing


class InProcess:
    """The floor: LangGraph's own `graph.astream` in this process, no server, no encoding. Runs
    on a thread use the graph with an InMemorySaver, stateless ones the graph without any."""

    name = "in-process astream"

    def __init__(self) -> None:
        self.saver = InMemorySaver()
        self.saved: dict[str, Pregel[Any, Any, Any, Any]] = {}

    def _graph(self, graph: str, stateful: bool) -> Pregel[Any, Any, Any, Any]:
        compiled: Pregel[Any, Any, Any, Any] = getattr(graphs, graph)
        if not stateful:
            return compiled
        if graph not in self.saved:
            self.saved[graph] = compiled.copy(update={"checkpointer": self.saver})
        return self.saved[graph]

    async def run(self, graph: str, graph_input: dict[str, Any], mode: str, *, thread_id: str | None = None) -> Timing:
        timing = Timing(time.perf_counter())
        config = RunnableConfig(recursion_limit=RUN_CONFIG["recursion_limit"])
        if thread_id is not None:
            config["configurable"] = {"thread_id": thread_id}
        compiled = self._graph(graph, thread_id is not None)

        async def consume() -> None:
            async for _ in compiled.astream(graph_input, config, stream_mode=cast("StreamMode", mode)):
                if timing.first is None:
                    timing.first = time.perf_counter()
                    timing.at_first = 1
                timing.events += 1

        return await _timed(consume(), timing)

    async def create_thread(self) -> str:
        return str(uuid.uuid4())

    async def hold(
        self, graph: str, graph_input: dict[str, Any], opened: Callable[[], None], stop: asyncio.Event
    ) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


def _count(timing: Timing, mode: str, event: runs_pb2.RunEvent, first_message: bool) -> None:
    """Counts an event of `mode`, timing the first; a run that failed raises."""
    case = event.WhichOneof("event")
    if case == mode:
        if timing.first is None:
            timing.first = time.perf_counter()
        if first_message:
            timing.at_first += 1
        timing.events += 1
    elif case == "error":
        raise RuntimeError(f"error event: {event.error.error}: {event.error.message}")
    elif case == "end" and event.end.status != runs_pb2.RUN_STATUS_SUCCESS:
        raise RuntimeError(f"run ended {runs_pb2.RunStatus.Name(event.end.status)}")


class Grpc:
    """RunsService.RunStream (one message per event) or RunStreamBatch (the events ready at the
    same moment in one message) through the generated stubs, one grpc.aio channel for all."""

    def __init__(
        self, target: str, *, batched: bool = False, own_connection: bool = False, name: str | None = None
    ) -> None:
        self.name = name or ("ours, gRPC batch" if batched else "ours, gRPC")
        self.batched = batched
        # Channels with the same target and options otherwise share one connection: on a port
        # that several worker processes serve, all their streams would go to one of them.
        options = (*GRPC_OPTIONS, ("grpc.use_local_subchannel_pool", 1)) if own_connection else GRPC_OPTIONS
        self.channel = grpc.aio.insecure_channel(target, options=options)
        self.stub = runs_pb2_grpc.RunsServiceStub(self.channel)
        self.threads = threads_pb2_grpc.ThreadsServiceStub(self.channel)

    @staticmethod
    def _request(
        graph: str, graph_input: dict[str, Any], mode: str, thread_id: str | None = None
    ) -> runs_pb2.CreateRunRequest:
        return runs_pb2.CreateRunRequest(
            assistant_id=graph,
            thread_id=thread_id or "",
            input=struct_pb2.Value(struct_value=_struct(graph_input)),
            config=_struct(RUN_CONFIG),
            stream_mode=[_GRPC_MODES[mode]],
            on_disconnect=runs_pb2.ON_DISCONNECT_CANCEL,
        )

    def _call(self, request: runs_pb2.CreateRunRequest) -> Any:
        return self.stub.RunStreamBatch(request) if self.batched else self.stub.RunStream(request)

    async def run(self, graph: str, graph_input: dict[str, Any], mode: str, *, thread_id: str | None = None) -> Timing:
        request = self._request(graph, graph_input, mode, thread_id)
        timing = Timing(time.perf_counter())

        async def consume() -> None:
            async for message in self._call(request):
                first = timing.first is None
                if self.batched:
                    for event in message.events:
                        _count(timing, mode, event, first)
                else:
                    _count(timing, mode, message, first)

        return await _timed(consume(), timing)

    async def create_thread(self) -> str:
        thread: threads_pb2.Thread = await self.threads.CreateThread(threads_pb2.CreateThreadRequest())
        return thread.thread_id

    async def hold(
        self, graph: str, graph_input: dict[str, Any], opened: Callable[[], None], stop: asyncio.Event
    ) -> None:
        call = self._call(self._request(graph, graph_input, "values"))
        # A queued run's stream may say nothing until the run starts: `stop` ends the wait.
        first = asyncio.ensure_future(call.read())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((first, stopped), return_when=asyncio.FIRST_COMPLETED)
            if first.done():
                first.result()  # the metadata event: the run exists and its stream is open
                opened()
                await stop.wait()
        finally:
            for waiter in (first, stopped):
                waiter.cancel()
            call.cancel()

    async def aclose(self) -> None:
        await self.channel.close()


class PyClient:
    """The light Python client (clients/python): `runs.stream`, which reads RunStreamBatch and
    decodes each event's payload into Python values, as its users get them."""

    def __init__(self, target: str, *, name: str = "ours, Python client") -> None:
        from langgraph.gateway.client import get_client

        self.name = name
        self.client = get_client(target, options=GRPC_OPTIONS)

    async def run(self, graph: str, graph_input: dict[str, Any], mode: str, *, thread_id: str | None = None) -> Timing:
        timing = Timing(time.perf_counter())

        async def consume() -> None:
            first_batch: bool | None = None
            stream = self.client.runs.stream(
                thread_id, graph, input=graph_input, stream_mode=mode, config=RUN_CONFIG, on_disconnect="cancel"
            )
            async for part in stream:
                if part.event == mode:
                    if timing.first is None:
                        timing.first = time.perf_counter()
                        first_batch = True
                    if first_batch:
                        timing.at_first += 1
                    timing.events += 1
                elif part.event == "error":
                    raise RuntimeError(f"error event: {part.data}")
                elif first_batch:
                    first_batch = False

        return await _timed(consume(), timing)

    async def create_thread(self) -> str:
        thread_id: str = (await self.client.threads.create())["thread_id"]
        return thread_id

    async def hold(
        self, graph: str, graph_input: dict[str, Any], opened: Callable[[], None], stop: asyncio.Event
    ) -> None:
        # An async generator, typed as an iterator by the client.
        stream = cast(
            AsyncGenerator[Any, None],
            self.client.runs.stream(
                None, graph, input=graph_input, stream_mode="values", config=RUN_CONFIG, on_disconnect="cancel"
            ),
        )
        # A queued run's stream may say nothing until the run starts: `stop` ends the wait.
        first = asyncio.ensure_future(anext(stream))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((first, stopped), return_when=asyncio.FIRST_COMPLETED)
            if first.done():
                first.result()  # the metadata part: the run exists and its stream is open
                opened()
                await stop.wait()
        finally:
            for waiter in (first, stopped):
                waiter.cancel()
            await stream.aclose()

    async def aclose(self) -> None:
        await self.client.close()


class Connect:
    """RunsService.RunStreamBatch over the Connect protocol (binary) on the HTTP port, as the
    TypeScript client in a browser streams a run, read with httpx over HTTP/1.1, or with `http2`
    over HTTP/2 in cleartext (prior knowledge), as connect-node with httpVersion "2"."""

    PATH = "/langgraph.gateway.v1.RunsService/RunStreamBatch"

    def __init__(self, base_url: str, *, name: str = "ours, Connect", http2: bool = False) -> None:
        self.name = name
        self.client = httpx.AsyncClient(
            base_url=base_url,
            http1=not http2,
            http2=http2,
            timeout=httpx.Timeout(RUN_TIMEOUT, connect=60),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256, keepalive_expiry=2.0),
            headers={"content-type": "application/connect+proto", "connect-protocol-version": "1"},
        )

    async def run(self, graph: str, graph_input: dict[str, Any], mode: str, *, thread_id: str | None = None) -> Timing:
        request = Grpc._request(graph, graph_input, mode, thread_id).SerializeToString()
        body = struct.pack(">BI", 0, len(request)) + request
        timing = Timing(time.perf_counter())

        async def consume() -> None:
            buffer = b""
            async with self.client.stream("POST", self.PATH, content=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
                async for chunk in response.aiter_raw():
                    buffer += chunk
                    while len(buffer) >= 5:
                        flags, size = buffer[0], int.from_bytes(buffer[1:5])
                        if len(buffer) < 5 + size:
                            break
                        data, buffer = buffer[5 : 5 + size], buffer[5 + size :]
                        if flags & 0x02:
                            end = json.loads(data)
                            if "error" in end:
                                raise RuntimeError(f"Connect error: {end['error']}")
                            continue
                        first = timing.first is None
                        for event in runs_pb2.RunEventBatch.FromString(data).events:
                            _count(timing, mode, event, first)

        return await _timed(consume(), timing)

    async def create_thread(self) -> str:
        response = await self.client.post(
            "/threads", json={}, headers={"content-type": "application/json", "accept": "application/json"}
        )
        thread_id: str = response.json()["thread_id"]
        return thread_id

    async def hold(
        self, graph: str, graph_input: dict[str, Any], opened: Callable[[], None], stop: asyncio.Event
    ) -> None:
        # As Sse.hold: the response headers are the server's answer, a queued run may send nothing.
        request = Grpc._request(graph, graph_input, "values", None).SerializeToString()
        body = struct.pack(">BI", 0, len(request)) + request
        async with self.client.stream("POST", self.PATH, content=body) as response:
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}")
            opened()
            await stop.wait()

    async def aclose(self) -> None:
        await self.client.aclose()


class _SseCounter:
    """Counts events named `mode`, timing the first; remembers `error` events."""

    __slots__ = ("mode", "partial", "pending", "events", "first", "at_first", "error")

    def __init__(self, mode: str) -> None:
        self.mode = mode.encode()
        self.partial = b""
        self.pending: bytes | None = None
        self.events = 0
        self.first: float | None = None
        self.at_first = 0
        self.error: bytes | None = None

    def feed(self, chunk: bytes) -> None:
        lines = chunk.split(b"\n")
        if self.partial:
            lines[0] = self.partial + lines[0]
        # Only the head of an unfinished line matters: a 1 MB data line is never kept whole.
        self.partial = lines.pop()[:64]
        first = self.first is None
        for line in lines:
            if line.startswith(b"event:"):
                self.pending = line[6:].strip()
            elif line.startswith(b"data:"):
                if self.pending == b"error" and self.error is None:
                    self.error = line[5:].strip()[:300]
            elif (line == b"" or line == b"\r") and self.pending is not None:
                if self.pending == self.mode:
                    if self.first is None:
                        self.first = time.perf_counter()
                    if first:
                        self.at_first += 1
                    self.events += 1
                self.pending = None


class Sse:
    """`POST /runs/stream` (a stateless run) or `POST /threads/{id}/runs/stream` (a run on a
    thread) read with httpx; the same code for both servers."""

    def __init__(self, name: str, base_url: str) -> None:
        self.name = name
        self.client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(RUN_TIMEOUT, connect=60),
            # Idle connections expire before the servers' own 5 s keep-alive timeout, so that a
            # request never races the server closing the connection it is sent on.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256, keepalive_expiry=2.0),
            headers={"Accept": "text/event-stream"},
        )

    @staticmethod
    def _body(graph: str, graph_input: dict[str, Any], mode: str) -> dict[str, Any]:
        return {
            "assistant_id": graph,
            "input": graph_input,
            "config": RUN_CONFIG,
            "stream_mode": [mode],
            "on_disconnect": "cancel",
        }

    async def run(self, graph: str, graph_input: dict[str, Any], mode: str, *, thread_id: str | None = None) -> Timing:
        body = self._body(graph, graph_input, mode)
        path = "/runs/stream" if thread_id is None else f"/threads/{thread_id}/runs/stream"
        counter = _SseCounter(mode)
        timing = Timing(time.perf_counter())

        async def consume() -> None:
            async with self.client.stream("POST", path, json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
                async for chunk in response.aiter_raw():
                    counter.feed(chunk)
            if counter.error is not None:
                raise RuntimeError(f"error event: {counter.error.decode(errors='replace')}")

        await _timed(consume(), timing)
        timing.first, timing.events, timing.at_first = counter.first, counter.events, counter.at_first
        return timing

    async def create_thread(self) -> str:
        response = await self.client.post("/threads", json={})
        if response.status_code != 200:
            raise RuntimeError(f"POST /threads: HTTP {response.status_code}: {response.text[:200]}")
        thread_id: str = response.json()["thread_id"]
        return thread_id

    async def hold(
        self, graph: str, graph_input: dict[str, Any], opened: Callable[[], None], stop: asyncio.Event
    ) -> None:
        # A queued run may send nothing for a while: the response headers are the server's answer.
        body = self._body(graph, graph_input, "values")
        async with self.client.stream("POST", "/runs/stream", json=body) as response:
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}")
            opened()
            await stop.wait()

    async def aclose(self) -> None:
        await self.client.aclose()


class Spread:
    """Round-robin over several clients of one kind, run by run: over the replicas of a
    deployment (a client for each), or over connections to one port that `--workers`
    processes share, where the kernel gives each new connection to one of them and a
    connection stays with it (a client for each connection, so that they spread). Over
    gateways that share nothing (`own_threads`), a thread's runs go where it was created."""

    def __init__(self, name: str, makers: Sequence[Callable[[], Client]], *, own_threads: bool = False) -> None:
        self.name = name
        self.clients = [make() for make in makers]
        self._next = 0
        self._owners: dict[str, Client] | None = {} if own_threads else None

    def _pick(self) -> Client:
        client = self.clients[self._next % len(self.clients)]
        self._next += 1
        return client

    async def run(self, graph: str, graph_input: dict[str, Any], mode: str, *, thread_id: str | None = None) -> Timing:
        owner = self._owners.get(thread_id) if self._owners is not None and thread_id is not None else None
        return await (owner or self._pick()).run(graph, graph_input, mode, thread_id=thread_id)

    async def create_thread(self) -> str:
        client = self._pick()
        thread_id = await client.create_thread()
        if self._owners is not None:
            self._owners[thread_id] = client
        return thread_id

    async def hold(
        self, graph: str, graph_input: dict[str, Any], opened: Callable[[], None], stop: asyncio.Event
    ) -> None:
        await self._pick().hold(graph, graph_input, opened, stop)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
