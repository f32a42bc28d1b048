"""`python -m bench load`: one gateway holding hundreds of event streams at once, some flowing
(an event every 50 ms) and some idle (one every ~30 s), over gRPC and SSE, for a bounded time.
Every stream runs bench/graphs.py's `ticker`, whose events carry a sequence number and the
wall-clock time they were written: each stream is checked for gaps, duplicates and the run's
end, and each event's delay to the client is measured. Exits 1 on any error or lost event.

The streams open `--batch` at a time; `--duration` counts from the moment the last batch is
open. Flowing streams run one run after another (each `run_seconds` long, the last ones cut to end
at the deadline) and each run must end with success. Idle streams are held until the deadline:
the client then closes its idle run streams (on_disconnect=cancel) and cancels the runs its
idle thread streams follow, which must then report the run's end. An idle event counts as lost
if it was written over `idle_slack` seconds before the deadline and had not arrived by then.

The client parses SSE from raw HTTP/1.1 bytes in an asyncio.Protocol (no HTTP library and no
coroutine per event), reads gRPC through RunStreamBatch, and can be split over several
processes (`--clients`). Not part of CI: it takes minutes and both cores.

`--postgres` serves from one process on Postgres + Redis instead of sqlite; `--workers N`, from N
processes on one port (the kernel spreads connections: gRPC streams then share a connection
per `--streams-per-channel`, 10 by default there, so that they spread too); `--replicas N`, from
N processes on ports of their own, the streams dealt round-robin over them. Each deployment on
Postgres + Redis gets a database and key prefix of its own (bench/_backends.py), removed after.
Those report the gRPC first-reply goal of issue 10 (p99 ≤ 1 s) beside the verdict."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import multiprocessing
import re
import sys
import tempfile
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import httpx
from google.protobuf import struct_pb2
from langgraph.gateway.v1 import runs_pb2, runs_pb2_grpc

from bench import _backends
from bench._servers import BENCH, GatewayServer, Replicas, ServerProcess, busy_cpu_seconds, revision, scratch_copy
from bench._stats import percentile

GRAPH = "ticker"
LABELS = {
    "grpc": "gRPC RunStreamBatch",
    "sse": "SSE POST /runs/stream",
    "sse_thread": "SSE POST /threads/{id}/runs/stream",
    "grpc_idle": "gRPC RunStreamBatch, idle",
    "sse_idle": "SSE POST /runs/stream, idle",
    "thread_stream": "SSE GET /threads/{id}/stream, idle",
}
# How the flowing and the idle streams are shared between the kinds.
FLOWING_SHARES = {"grpc": 2, "sse": 1, "sse_thread": 1}
IDLE_SHARES = {"grpc_idle": 1, "sse_idle": 1, "thread_stream": 1}
# One TCP connection per this many gRPC streams, as a fleet of clients would have.
STREAMS_PER_CHANNEL = 100
# Where several processes share one port: connections enough that the kernel spreads them.
STREAMS_PER_CHANNEL_WORKERS = 10
# Issue 10: across two workers, a run's request to its first gRPC reply, p99.
FIRST_REPLY_GOAL_MS = 1000.0
CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    # Channels with the same target and options otherwise share one connection.
    ("grpc.use_local_subchannel_pool", 1),
)
# The next batch opens when this one is open or after this long, whichever comes first.
OPEN_TIMEOUT = 30.0
# A flowing run shorter than this is not started near the deadline.
MIN_RUN_EVENTS = 20
SAMPLE_S = 0.5
# What varies between failures of the same cause: which stream, when, after how many events.
_DETAILS = re.compile(r" [(\[][^)\]]*[)\]]")


@dataclasses.dataclass(frozen=True)
class LoadPlan:
    duration: float = 60.0
    flowing: int = 500
    idle: int = 300
    batch: int = 50
    clients: int = 1
    interval: float = 0.05
    run_seconds: float = 25.0
    idle_interval: float = 30.0
    # Streams not open this long after the first one count as errors.
    ramp_limit: float = 120.0
    # How long after the deadline a stream may take to end before it counts as an error.
    grace: float = 30.0
    idle_slack: float = 10.0
    settle: float = 3.0
    # The deployment: sqlite (one process) or Postgres + Redis, with `workers` processes on one
    # port or `replicas` processes on ports of their own.
    postgres: bool = False
    workers: int = 1
    replicas: int = 1
    streams_per_channel: int = STREAMS_PER_CHANNEL

    @property
    def deployment(self) -> str:
        if not self.postgres:
            return "one gateway process on sqlite"
        if self.workers > 1:
            return f"`--workers {self.workers}` on Postgres + Redis (one port)"
        if self.replicas > 1:
            return f"{self.replicas} replicas on Postgres + Redis (ports of their own, streams dealt round-robin)"
        return "one gateway process on Postgres + Redis"

    @property
    def offered_rate(self) -> float:
        return self.flowing / self.interval


class Spec(NamedTuple):
    kind: str
    slot: int
    # Which of the deployment's replicas (port pairs) the stream uses.
    replica: int = 0


@dataclasses.dataclass
class Job:
    plan: LoadPlan
    specs: list[Spec]
    # (gRPC port, HTTP port) of each replica.
    ports: list[tuple[int, int]]
    batch: int
    start_at: float = 0.0


def _split(total: int, shares: dict[str, int]) -> dict[str, int]:
    weight = sum(shares.values())
    counts = {k: total * s // weight for k, s in shares.items()}
    for k in list(shares)[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def specs(plan: LoadPlan) -> list[Spec]:
    """Every stream: the idle ones first, while opening is quick, then the flowing ones on top;
    the kinds interleaved in each, so that every batch opens a mix of them."""
    counts = _split(plan.flowing, FLOWING_SHARES) | _split(plan.idle, IDLE_SHARES)
    out = [Spec(kind, slot) for kind, n in counts.items() for slot in range(n)]
    ordered = sorted(out, key=lambda s: (s.kind in FLOWING_SHARES, (s.slot + 0.5) / counts[s.kind]))
    return [spec._replace(replica=i % plan.replicas) for i, spec in enumerate(ordered)]


@dataclasses.dataclass
class Category:
    runs: int = 0
    expected: int = 0
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    errors: int = 0

    def add(self, other: Category) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclasses.dataclass
class WorkerResult:
    categories: dict[str, Category] = dataclasses.field(default_factory=dict)
    # How many streams failed for each cause, and the first failure of each, in full.
    causes: Counter[str] = dataclasses.field(default_factory=Counter)
    error_samples: dict[str, str] = dataclasses.field(default_factory=dict)
    # Seconds from each event's write in the graph to its arrival here.
    delays: array[float] = dataclasses.field(default_factory=lambda: array("d"))
    idle_delays: array[float] = dataclasses.field(default_factory=lambda: array("d"))
    # Seconds each flowing event was written after its schedule: the server's event loop lag.
    lateness: array[float] = dataclasses.field(default_factory=lambda: array("d"))
    # Seconds from each run's request to its first reply, by kind of stream (LABELS).
    first_reply: dict[str, array[float]] = dataclasses.field(default_factory=dict)
    # Events received per wall-clock second.
    per_second: Counter[int] = dataclasses.field(default_factory=Counter)
    # (time, flowing streams open, idle streams open), every SAMPLE_S.
    timeline: list[tuple[float, int, int]] = dataclasses.field(default_factory=list)
    started: float = 0.0
    all_open: float = 0.0
    deadline: float = 0.0
    ended: float = 0.0
    cpu: float = 0.0

    def error(self, message: str) -> None:
        cause = _DETAILS.sub("", message)[:120]
        self.causes[cause] += 1
        self.error_samples.setdefault(cause, message[:400])


class _Tally:
    """One run's stream: the next seq it expects, what went missing, how it ended."""

    __slots__ = (
        "kind", "expected", "interval", "result", "on_open",
        "next", "received", "lost", "duplicates", "ended", "opened", "opened_at", "error", "t0", "created",
    )  # fmt: skip

    def __init__(
        self, kind: str, expected: int, interval: float, result: WorkerResult, on_open: Callable[[], None]
    ) -> None:
        self.kind, self.expected, self.interval, self.result = kind, expected, interval, result
        self.on_open = on_open
        self.next = self.received = self.lost = self.duplicates = 0
        self.ended = self.opened = False
        self.opened_at = 0.0
        self.error: str | None = None
        self.t0: float | None = None
        self.created = time.time()  # its request goes out in the same turn of the loop

    def open(self) -> None:
        if not self.opened:
            self.opened, self.opened_at = True, time.time()
            if self.kind != "thread_stream":  # it replies with the run's first event
                self.result.first_reply.setdefault(self.kind, array("d")).append(self.opened_at - self.created)
            self.on_open()

    def due(self, until: float) -> None:
        """For a run the client ends: it should have had every event written before `until`."""
        start = self.t0 if self.t0 is not None else self.opened_at
        self.expected = math.floor((until - start) / self.interval) + 1 if self.opened and until >= start else 0

    def event(self, seq: int, t: float, now: float) -> None:
        if seq < self.next:
            self.duplicates += 1
            return
        if seq > self.next:
            self.lost += seq - self.next
        self.next = seq + 1
        self.received += 1
        self.result.per_second[int(now)] += 1
        if seq == 0:
            self.t0 = t
        if self.kind in FLOWING_SHARES:
            self.result.delays.append(now - t)
            if self.t0 is not None:
                self.result.lateness.append(t - self.t0 - seq * self.interval)
        else:
            self.result.idle_delays.append(now - t)

    def fail(self, message: str) -> None:
        if self.error is None:
            at = time.time() - self.result.started
            self.error = f"{message} [at +{at:.1f} s, after {self.received} of {self.expected or '?'} events]"

    def close(self) -> None:
        if self.error is None and not self.ended:
            self.error = "the stream closed before the run ended"
        if not self.opened:
            self.expected = 0  # no reply, no run to lose events of: an error only
        self.lost += max(self.expected - self.next, 0)
        c = self.result.categories.setdefault(self.kind, Category())
        c.runs += 1
        c.expected += self.expected
        c.received += self.received
        c.lost += self.lost
        c.duplicates += self.duplicates
        if self.error is not None:
            c.errors += 1
            self.result.error(f"{LABELS[self.kind]}: {self.error}")


class _SseStream(asyncio.Protocol):
    """One SSE response on a connection of its own, parsed from the raw bytes as they arrive:
    the status line, the chunked transfer encoding, then `event:` and `data:` lines only.
    `on_event(name, data, now)` returns True to stop reading (a thread stream never ends)."""

    def __init__(
        self, request: bytes, on_event: Callable[[bytes, bytes, float], bool], on_open: Callable[[], None] | None
    ) -> None:
        loop = asyncio.get_running_loop()
        self.request, self.on_event, self.on_open = request, on_event, on_open
        self.transport: asyncio.BaseTransport | None = None
        self.buffer = bytearray()
        self.status = 0
        self.partial = b""
        self.name: bytes | None = None
        self.data = b""
        # Settled when the headers arrive or the stream fails, whichever comes first.
        self.head: asyncio.Future[None] = loop.create_future()
        # Settled by the last chunk, by on_event, or with the error that ended the stream.
        self.done: asyncio.Future[None] = loop.create_future()
        # A stream given up on (cancelled, or failed before its headers) may fail unawaited:
        # its error is counted where it is awaited, not logged as never retrieved.
        self.done.add_done_callback(lambda f: f.cancelled() or f.exception())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"the connection closed before the stream ended ({exc})"))

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self.buffer += data
        try:
            if self.status == 0 and not self._headers():
                return
            self._chunks(time.time())
        except Exception as exc:
            self._fail(exc)

    def _headers(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).lower()
        del self.buffer[: end + 4]
        self.status = int(head.split(b" ", 2)[1])
        if self.status != 200:
            raise RuntimeError(f"HTTP {self.status}: {self.buffer[:200].decode(errors='replace')}")
        if b"\r\ntransfer-encoding: chunked" not in head:
            raise RuntimeError("the response is not chunked")
        if not self.head.done():
            self.head.set_result(None)
        if self.on_open is not None:
            self.on_open()
        return True

    def _chunks(self, now: float) -> None:
        buf, pos = self.buffer, 0
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(buf[pos:eol], 16)
            end = eol + 2 + size
            if len(buf) < end + 2:
                break
            if size == 0 or self._lines(bytes(buf[eol + 2 : end]), now):
                self._finish()
                return
            pos = end + 2
        del buf[:pos]

    def _lines(self, chunk: bytes, now: float) -> bool:
        if self.partial:
            chunk = self.partial + chunk
        lines = chunk.split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            if line.startswith(b"data:"):
                self.data = line[5:].strip()
            elif line.startswith(b"event:"):
                self.name = line[6:].strip()
            elif line == b"\r" or line == b"":
                if self.name is not None and self.on_event(self.name, self.data, now):
                    return True
                self.name = None
        return False

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)
        self.close()

    def _fail(self, exc: Exception) -> None:
        if not self.head.done():
            self.head.set_result(None)
        if not self.done.done():
            self.done.set_exception(exc)
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _http_request(method: str, path: str, port: int, body: dict[str, Any] | None, headers: str = "") -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n{headers}"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    return head.encode() + b"\r\n" + payload


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


class _Worker:
    """One client process's share of the streams, ramped up `job.batch` at a time."""

    def __init__(self, job: Job) -> None:
        self.job, self.plan = job, job.plan
        self.result = WorkerResult()
        self.open = {True: 0, False: 0}
        # Per replica: its channels' stubs, and an HTTP client.
        self.stubs: list[list[runs_pb2_grpc.RunsServiceStub]] = []
        self.http: list[httpx.AsyncClient] = []
        self.calls = 0
        # Known once every stream is open; set when it has passed.
        self.deadline: float | None = None
        self.closing = asyncio.Event()
        # The timeouts of the runs under way, tightened to the grace once the deadline is known.
        self.timeouts: set[asyncio.Timeout] = set()

    async def main(self) -> WorkerResult:
        job, plan = self.job, self.plan
        await asyncio.sleep(max(0.0, job.start_at - time.time()))
        loop = asyncio.get_running_loop()
        self.give_up = loop.time() + plan.ramp_limit + plan.duration + plan.grace
        channels: list[grpc.aio.Channel] = []
        for replica, (grpc_port, http_port) in enumerate(job.ports):
            n_grpc = sum(1 for s in job.specs if s.kind.startswith("grpc") and s.replica == replica)
            made = [
                grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}", options=CHANNEL_OPTIONS)
                for _ in range(max(1, math.ceil(n_grpc / plan.streams_per_channel)))
            ]
            channels += made
            self.stubs.append([runs_pb2_grpc.RunsServiceStub(c) for c in made])
            self.http.append(
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{http_port}",
                    timeout=httpx.Timeout(OPEN_TIMEOUT),
                    limits=httpx.Limits(max_connections=None, max_keepalive_connections=64, keepalive_expiry=2.0),
                )
            )
        cpu = time.process_time()
        self.result.started = time.time()
        sampler = asyncio.create_task(self._sample())
        tasks: list[asyncio.Task[None]] = []
        closer: asyncio.TimerHandle | None = None
        try:
            ramp_end = loop.time() + plan.ramp_limit
            for i in range(0, len(job.specs), job.batch):
                if loop.time() >= ramp_end:
                    for spec in job.specs[i:]:
                        tally = self._tally(spec.kind, 0, 0.0, asyncio.Event())
                        tally.fail(f"not opened: the streams before it took over {plan.ramp_limit:.0f} s to open")
                        tally.close()
                    break
                opened = []
                for spec in job.specs[i : i + job.batch]:
                    opened.append(asyncio.Event())
                    tasks.append(asyncio.create_task(self._stream(spec, opened[-1])))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(min(loop.time() + OPEN_TIMEOUT, ramp_end)):
                        await asyncio.gather(*(event.wait() for event in opened))
            self.result.all_open = time.time()
            self.deadline = self.result.deadline = time.time() + plan.duration
            self.give_up = loop.time() + plan.duration + plan.grace
            for timeout in self.timeouts:
                timeout.reschedule(self.give_up)
            closer = loop.call_later(plan.duration, self.closing.set)
            await asyncio.gather(*tasks)
        finally:
            if closer is not None:
                closer.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            for http in self.http:
                await http.aclose()
            for channel in channels:
                await channel.close()
        self.result.ended = time.time()
        self.result.cpu = time.process_time() - cpu
        return self.result

    async def _sample(self) -> None:
        plan = self.plan
        for _ in range(math.ceil((plan.ramp_limit + plan.duration + plan.grace + OPEN_TIMEOUT) / SAMPLE_S)):
            self.result.timeline.append((time.time(), self.open[True], self.open[False]))
            await asyncio.sleep(SAMPLE_S)

    def _tally(self, kind: str, expected: int, interval: float, opened: asyncio.Event) -> _Tally:
        flowing = kind in FLOWING_SHARES

        def on_open() -> None:
            self.open[flowing] += 1
            opened.set()

        return _Tally(kind, expected, interval, self.result, on_open)

    async def _stream(self, spec: Spec, opened: asyncio.Event) -> None:
        try:
            if spec.kind in FLOWING_SHARES:
                await self._flowing(spec, opened)
            else:
                await self._idle(spec, opened)
        finally:
            opened.set()

    async def _run(self, tally: _Tally, work: Coroutine[Any, Any, None]) -> None:
        try:
            async with asyncio.timeout_at(self.give_up) as timeout:
                self.timeouts.add(timeout)
                try:
                    await work
                finally:
                    self.timeouts.discard(timeout)
        except TimeoutError:
            tally.fail(f"still streaming {self.plan.grace:.0f} s after the deadline")
        except Exception as exc:
            tally.fail(f"{type(exc).__name__}: {exc}")
        finally:
            if tally.opened:
                self.open[tally.kind in FLOWING_SHARES] -= 1
            tally.close()

    async def _flowing(self, spec: Spec, opened: asyncio.Event) -> None:
        plan = self.plan
        on_thread = spec.kind == "sse_thread" or (spec.kind == "grpc" and spec.slot % 2 == 1)
        thread_id = str(uuid.uuid4()) if on_thread else None
        per_run = round(plan.run_seconds / plan.interval)
        shortest = MIN_RUN_EVENTS * plan.interval
        for _ in range(math.ceil((plan.ramp_limit + plan.duration) / shortest) + 1):
            count = per_run
            if self.deadline is not None:
                count = min(per_run, int((self.deadline - time.time()) / plan.interval))
            if count < MIN_RUN_EVENTS:
                return
            tally = self._tally(spec.kind, count, plan.interval, opened)
            if spec.kind == "grpc":
                await self._run(tally, self._grpc(tally, spec.replica, thread_id, count, plan.interval))
            else:
                await self._run(tally, self._sse_run(tally, spec.replica, thread_id, count, plan.interval))
            if tally.error is not None:
                return  # a failing slot stops rather than hammering the server

    async def _idle(self, spec: Spec, opened: asyncio.Event) -> None:
        plan = self.plan
        # More events than the test can last: the client ends these runs at the deadline.
        count = math.ceil((plan.ramp_limit + plan.duration + plan.grace) / plan.idle_interval) + 1
        tally = self._tally(spec.kind, 0, plan.idle_interval, opened)
        r = spec.replica
        if spec.kind == "thread_stream":
            await self._run(tally, self._thread_stream(tally, r, count, plan.idle_interval))
        elif spec.kind == "grpc_idle":
            await self._run(tally, self._held(tally, self._grpc(tally, r, None, count, plan.idle_interval)))
        else:
            await self._run(tally, self._held(tally, self._sse_run(tally, r, None, count, plan.idle_interval)))

    async def _until_closing(self, stream: asyncio.Future[Any]) -> bool:
        """Waits for the deadline or for `stream` to end; True at the deadline."""
        closing = asyncio.ensure_future(self.closing.wait())
        try:
            await asyncio.wait((stream, closing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
        if not stream.done():
            return True
        stream.result()  # the stream's own error, if it failed
        raise RuntimeError("the stream ended before the client closed it")

    async def _held(self, tally: _Tally, work: Coroutine[Any, Any, None]) -> None:
        reader = asyncio.ensure_future(work)
        try:
            await self._until_closing(reader)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        assert self.deadline is not None
        tally.due(self.deadline - self.plan.idle_slack)
        tally.ended = True

    async def _grpc(self, tally: _Tally, replica: int, thread_id: str | None, count: int, interval: float) -> None:
        request = runs_pb2.CreateRunRequest(
            assistant_id=GRAPH,
            input=struct_pb2.Value(struct_value=_struct({"count": count, "interval": interval})),
            stream_mode=[runs_pb2.STREAM_MODE_CUSTOM],
            on_disconnect=runs_pb2.ON_DISCONNECT_CANCEL,
        )
        if thread_id is not None:
            request.thread_id = thread_id
            request.if_not_exists = runs_pb2.IF_NOT_EXISTS_CREATE
            request.multitask_strategy = runs_pb2.MULTITASK_STRATEGY_ENQUEUE
        self.calls += 1
        stubs = self.stubs[replica]
        channel = self.calls % len(stubs)
        started = time.time()
        call = stubs[channel].RunStreamBatch(request)
        try:
            async for message in call:
                now = time.time()
                tally.open()
                for event in message.events:
                    case = event.WhichOneof("event")
                    if case == "custom":
                        data = json.loads(event.custom.json)
                        tally.event(data["seq"], data["t"], now)
                    elif case == "error":
                        tally.fail(f"error event: {event.error.error}: {event.error.message}")
                    elif case == "end":
                        tally.ended = True
                        if event.end.status != runs_pb2.RUN_STATUS_SUCCESS:
                            tally.fail(f"run ended {runs_pb2.RunStatus.Name(event.end.status)}")
        except grpc.aio.AioRpcError as exc:
            where = (
                f"channel {channel}, {'thread' if thread_id else 'stateless'} run, called "
                f"{time.time() - started:.1f} s before, {'after' if tally.opened else 'before'} the first reply"
            )
            raise RuntimeError(f"gRPC {exc.code().name}: {exc.details()} ({where})") from None
        finally:
            call.cancel()

    def _on_run_event(self, tally: _Tally) -> Callable[[bytes, bytes, float], bool]:
        def on_event(name: bytes, data: bytes, now: float) -> bool:
            if name == b"custom":
                event = json.loads(data)
                tally.event(event["seq"], event["t"], now)
            elif name == b"error":
                tally.fail(f"error event: {data[:200].decode(errors='replace')}")
            return False

        return on_event

    async def _connect(self, stream: _SseStream, port: int) -> _SseStream:
        await asyncio.get_running_loop().create_connection(lambda: stream, "127.0.0.1", port)
        return stream

    async def _sse_run(self, tally: _Tally, replica: int, thread_id: str | None, count: int, interval: float) -> None:
        body: dict[str, Any] = {
            "assistant_id": GRAPH,
            "input": {"count": count, "interval": interval},
            "stream_mode": ["custom"],
            "on_disconnect": "cancel",
        }
        path = "/runs/stream"
        if thread_id is not None:
            path = f"/threads/{thread_id}/runs/stream"
            body |= {"if_not_exists": "create", "multitask_strategy": "enqueue"}
        port = self.job.ports[replica][1]
        request = _http_request("POST", path, port, body)
        stream = await self._connect(_SseStream(request, self._on_run_event(tally), tally.open), port)
        try:
            await stream.done
            tally.ended = True
        finally:
            stream.close()

    async def _thread_stream(self, tally: _Tally, replica: int, count: int, interval: float) -> None:
        """Follows a thread from before its run exists: `Last-Event-ID: -1` also replays
        whatever the run sent before the subscription took hold."""
        thread_id = str(uuid.uuid4())
        http = self.http[replica]
        response = await http.post("/threads", json={"thread_id": thread_id})
        if response.status_code != 200:
            raise RuntimeError(f"POST /threads: HTTP {response.status_code}: {response.text[:200]}")
        run_event = self._on_run_event(tally)

        def on_event(name: bytes, data: bytes, now: float) -> bool:
            if name == b"metadata" and b'"run_done"' in data:
                tally.ended = True
                return True
            return run_event(name, data, now)

        port = self.job.ports[replica][1]
        request = _http_request("GET", f"/threads/{thread_id}/stream", port, None, "Last-Event-ID: -1\r\n")
        stream = await self._connect(_SseStream(request, on_event, None), port)
        try:
            await stream.head
            if stream.status != 200:
                await stream.done  # raises the HTTP error
            body = {"assistant_id": GRAPH, "input": {"count": count, "interval": interval}, "stream_mode": ["custom"]}
            response = await http.post(f"/threads/{thread_id}/runs", json=body)
            if response.status_code != 200:
                raise RuntimeError(f"POST /threads/{{id}}/runs: HTTP {response.status_code}: {response.text[:200]}")
            run_id = response.json()["run_id"]
            tally.open()
            await self._until_closing(stream.done)
            assert self.deadline is not None
            tally.due(self.deadline - self.plan.idle_slack)
            # Cancelled, the run must still reach the subscriber's stream as ended.
            response = await http.post(f"/threads/{thread_id}/runs/{run_id}/cancel")
            if response.status_code not in (200, 202, 204):
                raise RuntimeError(f"POST .../cancel: HTTP {response.status_code}: {response.text[:200]}")
            await stream.done
        finally:
            stream.close()


def _worker_process(job: Job, conn: Connection) -> None:
    conn.send("ready")
    job.start_at = conn.recv()
    try:
        conn.send(asyncio.run(_Worker(job).main()))
    except Exception as exc:
        conn.send(f"{type(exc).__name__}: {exc}")
    conn.close()


def _log(message: str) -> None:
    print(f"[bench load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _run_clients(
    plan: LoadPlan, gateway: ServerProcess, ports: list[tuple[int, int]]
) -> tuple[list[WorkerResult], list[tuple[float, dict[str, float]]]]:
    """The streams split over `plan.clients` processes; the server's stats sampled meanwhile."""
    every = specs(plan)
    ctx = multiprocessing.get_context("spawn")
    batch = max(1, math.ceil(plan.batch / plan.clients))
    conns, procs = [], []
    for i in range(plan.clients):
        job = Job(plan, every[i :: plan.clients], ports, batch)
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_process, args=(job, child), daemon=True)
        proc.start()
        conns.append(parent)
        procs.append(proc)
    try:
        for conn in conns:
            if not conn.poll(60) or conn.recv() != "ready":
                raise RuntimeError("a client process did not start")
        start_at = time.time() + 0.2
        for conn in conns:
            conn.send(start_at)
        samples: list[tuple[float, dict[str, float]]] = []
        results: dict[int, WorkerResult] = {}
        give_up = start_at + plan.ramp_limit + plan.duration + plan.grace + OPEN_TIMEOUT * 2
        while len(results) < len(conns) and time.time() < give_up:
            samples.append((time.time(), gateway.stats()))
            for ready in wait([c for i, c in enumerate(conns) if i not in results], timeout=SAMPLE_S):
                assert isinstance(ready, Connection)
                result = ready.recv()
                if isinstance(result, str):
                    raise RuntimeError(f"a client process failed: {result}")
                results[conns.index(ready)] = result
        if len(results) < len(conns):
            raise RuntimeError("a client process did not finish in time")
        return [results[i] for i in range(len(conns))], samples
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


def _warm_up(plan: LoadPlan, ports: list[tuple[int, int]]) -> WorkerResult:
    """One short run of every kind on each replica: imports and first-use caches are not
    per-stream memory."""
    small = dataclasses.replace(plan, duration=3.0, run_seconds=2.0, idle_interval=1.0, idle_slack=1.0)
    # Several of each on one port that workers share, so that each worker likely gets some.
    copies = range(plan.workers)
    warm = [Spec(kind, copy, replica) for replica in range(len(ports)) for copy in copies for kind in LABELS]
    job = Job(small, warm, ports, len(warm))
    job.start_at = time.time()
    return asyncio.run(_Worker(job).main())


def _mb(value: float) -> float:
    return round(value / 2**20, 1)


def _ms(values: Sequence[float], p: float) -> float | None:
    v = percentile(values, p)
    return None if v is None else round(v * 1000, 1)


def summarise(
    plan: LoadPlan,
    warm: WorkerResult,
    results: list[WorkerResult],
    samples: list[tuple[float, dict[str, float]]],
    before: dict[str, float],
    after: dict[str, float],
    machine_busy: float,
    server_log: list[str],
) -> dict[str, Any]:
    categories: dict[str, Category] = {}
    delays: list[float] = []
    idle_delays: list[float] = []
    lateness: list[float] = []
    per_second: Counter[int] = Counter()
    first_reply: dict[str, list[float]] = {}
    first_reply_by_kind: dict[str, list[float]] = {}
    open_at: Counter[int] = Counter()
    causes = Counter(warm.causes)
    samples_by_cause = dict(warm.error_samples)
    for r in results:
        for kind, c in r.categories.items():
            categories.setdefault(kind, Category()).add(c)
        delays += r.delays
        idle_delays += r.idle_delays
        lateness += r.lateness
        for kind, values in r.first_reply.items():
            first_reply_by_kind.setdefault(kind, []).extend(values)
            edge = "gRPC" if kind.startswith("grpc") else "SSE"
            first_reply.setdefault(edge, []).extend(values)
        per_second.update(r.per_second)
        for t, flowing, idle in r.timeline:
            open_at[round(t / SAMPLE_S)] += flowing + idle
        causes.update(r.causes)
        for cause, sample in r.error_samples.items():
            samples_by_cause.setdefault(cause, sample)
    total = Category()
    for c in categories.values():
        total.add(c)
    warm_total = Category()
    for c in warm.categories.values():
        warm_total.add(c)

    started = min(r.started for r in results)
    all_open = max(r.all_open for r in results)
    ended = max(r.ended for r in results)
    # Full load: from the moment every stream is open until the deadline.
    window = (math.ceil(all_open), max(math.floor(min(r.deadline for r in results)), math.ceil(all_open) + 1))
    steady_events = sum(n for s, n in per_second.items() if window[0] <= s < window[1])
    steady_rate = steady_events / max(window[1] - window[0], 1)
    in_window = [s for t, s in samples if window[0] <= t < window[1]]
    peak_rss = max(s["rss"] for _, s in samples)
    peak_open = max(open_at.values(), default=0)

    def cpu_between(a: float, b: float) -> float:
        """The server's CPU use from a to b, in % of one core."""
        span = [(t, s) for t, s in samples if a <= t <= b]
        if len(span) < 2:
            return 0.0
        return 100 * (span[-1][1]["cpu"] - span[0][1]["cpu"]) / (span[-1][0] - span[0][0])

    server_cpu = cpu_between(started, ended)
    client_cpu = 100 * sum(r.cpu for r in results) / (ended - started)
    goals = []
    if plan.postgres:
        p99 = _ms(first_reply.get("gRPC", []), 99)
        goals.append(
            {
                "goal": "gRPC first reply p99",
                "measured_ms": p99,
                "goal_ms": FIRST_REPLY_GOAL_MS,
                "result": "n/a" if p99 is None else "PASS" if p99 <= FIRST_REPLY_GOAL_MS else "FAIL",
            }
        )

    return {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "revision": revision(),
            "plan": dataclasses.asdict(plan),
            "deployment": plan.deployment,
            "cores": multiprocessing.cpu_count(),
        },
        "goals": goals,
        "streams": {kind: dataclasses.asdict(categories.get(kind, Category())) for kind in LABELS},
        "warm_up": dataclasses.asdict(warm_total),
        "total": dataclasses.asdict(total),
        "errors": total.errors + warm_total.errors,
        "lost": total.lost + total.duplicates + warm_total.lost + warm_total.duplicates,
        "error_causes": [
            {"streams": n, "cause": cause, "first": samples_by_cause[cause]} for cause, n in causes.most_common(20)
        ],
        "server_log": server_log,
        "time": {
            "ramp_s": round(all_open - started, 1),
            "full_load_window_s": window[1] - window[0],
            "total_s": round(ended - started, 1),
        },
        "delivery": {
            "events": total.received,
            "events_per_s_overall": round(total.received / (ended - started)),
            "events_per_s_full_load": round(steady_rate),
            "offered_per_s": round(plan.offered_rate),
            "delivered_over_offered": round(steady_rate / plan.offered_rate, 3) if plan.offered_rate else None,
            "delay_ms": {"p50": _ms(delays, 50), "p99": _ms(delays, 99), "max": _ms(delays, 100)},
            "idle_delay_ms": {"p50": _ms(idle_delays, 50), "p99": _ms(idle_delays, 99), "max": _ms(idle_delays, 100)},
            "write_lateness_ms": {"p50": _ms(lateness, 50), "p99": _ms(lateness, 99), "max": _ms(lateness, 100)},
            "first_reply_ms": {
                edge: {"p50": _ms(v, 50), "p99": _ms(v, 99), "max": _ms(v, 100)}
                for edge, v in sorted(first_reply.items())
            },
            "first_reply_by_kind_ms": {
                kind: {"p50": _ms(first_reply_by_kind[kind], 50), "p99": _ms(first_reply_by_kind[kind], 99)}
                for kind in LABELS
                if kind in first_reply_by_kind
            },
        },
        "server": {
            "rss_mb": {"before": _mb(before["rss"]), "peak": _mb(peak_rss), "after": _mb(after["rss"])},
            "peak_open_streams": peak_open,
            "kb_per_open_stream": round((peak_rss - before["rss"]) / max(peak_open, 1) / 1024, 1),
            "threads": {
                "before": before["threads"],
                "peak": max(s["threads"] for _, s in samples),
                "after": after["threads"],
            },
            "cpu_percent_of_a_core": {
                "full_load": round(cpu_between(window[0], window[1]), 1),
                "overall": round(server_cpu, 1),
            },
            "cpu_us_per_event": round(server_cpu / 100 * (ended - started) / max(total.received, 1) * 1e6, 1),
            "rss_mb_full_load_median": _mb(sorted(s["rss"] for s in in_window)[len(in_window) // 2])
            if in_window
            else None,
        },
        "client": {
            "processes": plan.clients,
            "cpu_percent_of_a_core": round(client_cpu, 1),
            "cpu_us_per_event": round(client_cpu / 100 * (ended - started) / max(total.received, 1) * 1e6, 1),
            "per_process": [round(100 * r.cpu / (r.ended - r.started), 1) for r in results],
        },
        "machine_busy_percent": round(machine_busy, 1),
        # What neither the gateway nor this client used: other processes that shared the cores.
        "others_percent_of_machine": round(
            max(machine_busy - (server_cpu + client_cpu) / multiprocessing.cpu_count(), 0.0), 1
        ),
    }


def render(report: dict[str, Any]) -> str:
    plan, d, s, c = report["meta"]["plan"], report["delivery"], report["server"], report["client"]
    processes = plan.get("workers", 1) * plan.get("replicas", 1)
    saturated = ""
    if s["cpu_percent_of_a_core"]["full_load"] >= 90 * processes:
        saturated = " (saturated: one event loop uses one core at most)" if processes == 1 else " (saturated)"
    lines = [
        f"Load test of {report['meta']['revision']} on {report['meta']['cores']} cores, "
        f"{report['meta'].get('deployment', 'one gateway process on sqlite')}: {plan['flowing']} flowing "
        f"streams (an event every {plan['interval'] * 1000:.0f} ms, runs of {plan['run_seconds']:.0f} s) and "
        f"{plan['idle']} idle ones (an event every ~{plan['idle_interval']:.0f} s) for {plan['duration']:.0f} s, "
        f"opened {plan['batch']} at a time by {plan['clients']} client process(es); "
        f"ramp {report['time']['ramp_s']} s, full load for {report['time']['full_load_window_s']} s.",
        "",
        "| streams | runs | events | lost | duplicates | errors |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for kind, row in report["streams"].items():
        lines.append(
            f"| {LABELS[kind]} | {row['runs']} | {row['received']} | {row['lost']} "
            f"| {row['duplicates']} | {row['errors']} |"
        )
    t = report["total"]
    lines.append(f"| **all** | {t['runs']} | {t['received']} | {t['lost']} | {t['duplicates']} | {t['errors']} |")
    lines += [
        "",
        f"- delivered: {d['events_per_s_full_load']} events/s at full load, {d['delivered_over_offered']} × the "
        f"{d['offered_per_s']}/s the graphs wrote on schedule ({d['events_per_s_overall']}/s over the whole run)",
        f"- event delay, write to client: p50 {d['delay_ms']['p50']} ms, p99 {d['delay_ms']['p99']} ms, max "
        f"{d['delay_ms']['max']} ms (idle streams: p99 {d['idle_delay_ms']['p99']} ms)",
        f"- graph's write lateness behind its schedule (server loop lag): p50 {d['write_lateness_ms']['p50']} ms, "
        f"p99 {d['write_lateness_ms']['p99']} ms, max {d['write_lateness_ms']['max']} ms",
        "- a run's request to its first reply: "
        + "; ".join(
            f"{edge} p50 {v['p50']} ms, p99 {v['p99']} ms, max {v['max']} ms" for edge, v in d["first_reply_ms"].items()
        ),
        "- first reply by stream: "
        + "; ".join(
            f"{LABELS[kind]} p50 {v['p50']} ms, p99 {v['p99']} ms" for kind, v in d["first_reply_by_kind_ms"].items()
        ),
        f"- server RSS: {s['rss_mb']['before']} MB before, {s['rss_mb']['peak']} MB peak with "
        f"{s['peak_open_streams']} streams open, {s['rss_mb']['after']} MB after: "
        f"{s['kb_per_open_stream']} KB per open stream",
        f"- server threads: {s['threads']['before']} before, {s['threads']['peak']} peak, {s['threads']['after']} "
        f"after ({s['threads']['peak'] - s['threads']['before']} more with {s['peak_open_streams']} streams open)",
        f"- server CPU: {s['cpu_percent_of_a_core']['full_load']}% of a core at full load"
        f"{saturated}, "
        f"{s['cpu_percent_of_a_core']['overall']}% overall, {s['cpu_us_per_event']} µs per event",
        f"- client CPU: {c['cpu_percent_of_a_core']}% of a core "
        f"({' + '.join(f'{p}%' for p in c['per_process'])}), {c['cpu_us_per_event']} µs per event; machine "
        f"{report['machine_busy_percent']}% busy, {report['others_percent_of_machine']}% of it by other processes",
    ]
    if report["warm_up"]["errors"] or report["warm_up"]["lost"]:
        lines.append(f"- warm-up: {report['warm_up']['errors']} errors, {report['warm_up']['lost']} events lost")
    verdict = "PASS" if report["errors"] == 0 and report["lost"] == 0 else "FAIL"
    lines.append(f"- **{verdict}**: {report['errors']} errors, {report['lost']} events lost or duplicated")
    for goal in report.get("goals", ()):
        lines.append(
            f"- issue 10 goal, {goal['goal']}: {goal['measured_ms']} ms, goal ≤ {goal['goal_ms']:.0f} ms: "
            f"**{goal['result']}**"
        )
    for cause in report["error_causes"][:10]:
        lines.append(f"  - {cause['streams']} × {cause['first']}")
    if report["errors"] and report["server_log"]:
        lines.append("- the server's last log lines:")
        lines += [f"  > {line}" for line in report["server_log"][-10:]]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench load", description=__doc__)
    defaults = LoadPlan()
    parser.add_argument(
        "--duration",
        type=float,
        default=defaults.duration,
        help="seconds at full load, after the ramp (default: %(default)s)",
    )
    parser.add_argument("--flowing", type=int, default=defaults.flowing, help="flowing streams (default: %(default)s)")
    parser.add_argument("--idle", type=int, default=defaults.idle, help="idle streams (default: %(default)s)")
    parser.add_argument(
        "--batch", type=int, default=defaults.batch, help="streams opened at a time (default: %(default)s)"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=defaults.interval * 1000,
        help="ms between a flowing stream's events (default: %(default)s)",
    )
    parser.add_argument("--clients", type=int, default=defaults.clients, help="client processes (default: %(default)s)")
    parser.add_argument(
        "--postgres", action="store_true", help="serve from Postgres + Redis instead of sqlite (bench/_backends.py)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="gateway processes on one port, on Postgres + Redis (default: 1)"
    )
    parser.add_argument(
        "--replicas", type=int, default=1, help="gateway processes on ports of their own, on Postgres + Redis"
    )
    parser.add_argument(
        "--streams-per-channel",
        type=int,
        help=f"gRPC streams per connection (default: {STREAMS_PER_CHANNEL}; "
        f"{STREAMS_PER_CHANNEL_WORKERS} with --workers, so that connections spread)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="JSON results (default: bench/results/load.json; load-<deployment>.json on Postgres + Redis)",
    )
    return parser


@contextlib.contextmanager
def _deployment(plan: LoadPlan, config: Path) -> Iterator[tuple[ServerProcess, list[tuple[int, int]]]]:
    """The gateway processes the plan asks for, and each one's (gRPC, HTTP) ports; stopped,
    and their database and key prefix removed, afterwards."""
    # Every stream's run live at once: a process runs 256 at most by default, and queues the rest.
    live = ("--max-concurrent-runs", str(plan.flowing + plan.idle + 64))
    if not plan.postgres:
        gateway = GatewayServer(config, args=live).start()
        try:
            yield gateway, [(gateway.grpc_port, gateway.http_port)]
        finally:
            gateway.stop()
        return
    if (reason := _backends.unreachable()) is not None:
        sys.exit(f"error: {reason}")
    with _backends.shared_backends() as args, contextlib.ExitStack() as stack:
        args = (*args, *live)
        servers: list[GatewayServer] = []
        for _ in range(plan.replicas):
            workers = ("--workers", str(plan.workers)) if plan.workers > 1 else ()
            servers.append(GatewayServer(config, args=(*args, *workers)).start())
            stack.callback(servers[-1].stop)
        yield Replicas(servers), [(s.grpc_port, s.http_port) for s in servers]


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    if (
        args.duration <= 0
        or args.flowing < 0
        or args.idle < 0
        or args.batch < 1
        or args.clients < 1
        or args.interval <= 0
        or args.workers < 1
        or args.replicas < 1
        or (args.streams_per_channel is not None and args.streams_per_channel < 1)
    ):
        sys.exit(
            "error: --duration, --interval, --batch, --clients, --workers, --replicas and --streams-per-channel "
            "must be positive, --flowing and --idle not negative"
        )
    if args.workers > 1 and args.replicas > 1:
        sys.exit("error: --workers or --replicas, not both")
    per_channel = args.streams_per_channel or (STREAMS_PER_CHANNEL_WORKERS if args.workers > 1 else STREAMS_PER_CHANNEL)
    plan = LoadPlan(
        duration=args.duration,
        flowing=args.flowing,
        idle=args.idle,
        batch=args.batch,
        clients=args.clients,
        interval=args.interval / 1000,
        postgres=args.postgres or args.workers > 1 or args.replicas > 1,
        workers=args.workers,
        replicas=args.replicas,
        streams_per_channel=per_channel,
    )
    with tempfile.TemporaryDirectory(prefix="bench-load-") as scratch:
        with _deployment(plan, scratch_copy(Path(scratch))) as (gateway, ports):
            _log(f"{plan.deployment}: gRPC, HTTP ports {ports}; warming up")
            warm = _warm_up(plan, ports)
            time.sleep(plan.settle)
            before = gateway.stats()
            busy, wall = busy_cpu_seconds(), time.monotonic()
            _log(f"{plan.flowing} flowing + {plan.idle} idle streams for {plan.duration:.0f} s")
            results, samples = _run_clients(plan, gateway, ports)
            machine_busy = 100 * (busy_cpu_seconds() - busy) / ((time.monotonic() - wall) * multiprocessing.cpu_count())
            time.sleep(plan.settle)
            after = gateway.stats()
    servers = gateway.servers if isinstance(gateway, Replicas) else [gateway]
    output_lines = [line for server in servers for line in server.output]
    server_log = [line.rstrip() for line in output_lines if not line.startswith('{"event": "ready"')]
    report = summarise(plan, warm, results, samples, before, after, machine_busy, server_log[-40:])
    text = render(report)
    print(text)
    name = "load"
    if plan.postgres:
        name += "-workers" if plan.workers > 1 else "-replicas" if plan.replicas > 1 else "-postgres"
        name += str(max(plan.workers, plan.replicas)) if max(plan.workers, plan.replicas) > 1 else ""
    output = args.output or BENCH / "results" / f"{name}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2))
    output.with_suffix(".md").write_text(text + "\n")
    _log(f"wrote {output} and {output.with_suffix('.md').name}")
    return 1 if report["errors"] or report["lost"] else 0
