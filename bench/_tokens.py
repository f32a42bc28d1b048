"""`python -m bench tokens`: an LLM's token stream (bench/graphs.py's `tokens`, one model call
streaming N tokens) over the thread protocol beside runs.stream, on our gateway and on the
reference, with LangGraph's own `graph.astream(stream_mode="messages")` as the floor.

Targets, run by run in rotating order:
- runs.stream: `POST /runs/stream` with `messages-tuple` over SSE (ours and the reference's),
  and our RunStreamBatch; one `messages` event per token.
- the thread protocol: `run.start`, then a `messages` subscription from the run's first event,
  until the run's `completed`: over SSE (ours and the reference's), over our WebSocket (commands
  and events on one socket) and our gRPC ThreadSession; one `content-block-delta` per token.

Each run is timed from the request to its last token; "delivery" counts the tokens after the
first, from the first's arrival (a server's start-up delay per run does not count there). Server
CPU is per token, read from /proc around each target's runs."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc
import httpx
import orjson
from google.protobuf import json_format
from langgraph.gateway.v1 import runs_pb2, runs_pb2_grpc, sessions_pb2, sessions_pb2_grpc
from websockets.asyncio.client import connect

from bench import graphs
from bench._clients import GRPC_OPTIONS, RUN_TIMEOUT, Timing
from bench._servers import (
    BENCH,
    GatewayServer,
    ReferenceServer,
    ServerProcess,
    ensure_reference_venv,
    scratch_copy,
)
from bench._stats import median

RESULTS = BENCH / "results"
LABELS = {
    "inprocess": "in-process astream",
    "runs_sse": "ours runs.stream SSE",
    "runs_grpc": "ours runs.stream gRPC batch",
    "protocol_sse": "ours protocol SSE",
    "protocol_ws": "ours protocol WebSocket",
    "protocol_grpc": "ours protocol gRPC session",
    "ref_runs_sse": "reference runs.stream SSE",
    "ref_protocol_sse": "reference protocol SSE",
}
_DELTA = b'"content-block-delta"'


class TokenClient(Protocol):
    async def run(self, count: int) -> Timing: ...

    async def aclose(self) -> None: ...


def _mark(timing: Timing, first_read: bool) -> None:
    if timing.first is None:
        timing.first = time.perf_counter()
    if first_read:
        timing.at_first += 1
    timing.events += 1


async def _timed(work: Any, timing: Timing) -> Timing:
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            await work
    except Exception as exc:
        timing.error = f"{type(exc).__name__}: {exc}"[:300]
    timing.end = time.perf_counter()
    return timing


def _root_end(envelope: dict[str, Any]) -> bool:
    params = envelope["params"]
    if params["namespace"] or params["data"].get("event") in ("running", "started"):
        return False
    if params["data"].get("event") != "completed":
        raise RuntimeError(f"the run ended {params['data']}")
    return True


class InProcess:
    async def run(self, count: int) -> Timing:
        timing = Timing(time.perf_counter())

        async def consume() -> None:
            async for _ in graphs.tokens.astream({"count": count}, stream_mode="messages"):
                _mark(timing, timing.first is None)

        return await _timed(consume(), timing)

    async def aclose(self) -> None:
        pass


class _SseLines:
    """Splits SSE bytes into (event name, data line) pairs without keeping more than a line."""

    def __init__(self) -> None:
        self.partial = b""
        self.name = b""

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        out = []
        for line in lines:
            if line.startswith(b"event:"):
                self.name = line[6:].strip()
            elif line.startswith(b"data:"):
                out.append((self.name, line[5:].strip()))
        return out


def _http(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(RUN_TIMEOUT, connect=60))


class RunsSse:
    def __init__(self, base_url: str) -> None:
        self.client = _http(base_url)

    async def run(self, count: int) -> Timing:
        body = {"assistant_id": "tokens", "input": {"count": count}, "stream_mode": ["messages-tuple"]}
        timing = Timing(time.perf_counter())

        async def consume() -> None:
            lines = _SseLines()
            async with self.client.stream("POST", "/runs/stream", json=body) as response:
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}")
                async for chunk in response.aiter_raw():
                    first = timing.first is None
                    for name, data in lines.feed(chunk):
                        if name == b"messages":
                            _mark(timing, first)
                        elif name == b"error":
                            raise RuntimeError(data.decode())

        return await _timed(consume(), timing)

    async def aclose(self) -> None:
        await self.client.aclose()


class RunsGrpc:
    def __init__(self, target: str) -> None:
        self.channel = grpc.aio.insecure_channel(target, options=GRPC_OPTIONS)
        self.stub = runs_pb2_grpc.RunsServiceStub(self.channel)

    async def run(self, count: int) -> Timing:
        request = runs_pb2.CreateRunRequest(assistant_id="tokens", stream_mode=[runs_pb2.STREAM_MODE_MESSAGES_TUPLE])
        request.input.struct_value.update({"count": count})
        timing = Timing(time.perf_counter())

        async def consume() -> None:
            async for batch in self.stub.RunStreamBatch(request):
                first = timing.first is None
                for event in batch.events:
                    if event.HasField("messages"):
                        _mark(timing, first)
                    elif event.HasField("error"):
                        raise RuntimeError(event.error.message)

        return await _timed(consume(), timing)

    async def aclose(self) -> None:
        await self.channel.close()


def _start_command(count: int) -> dict[str, Any]:
    return {"id": 1, "method": "run.start", "params": {"assistant_id": "tokens", "input": {"count": count}}}


class ProtocolSse:
    """run.start on a new thread, then the run's messages from its first event (`since`: the
    seq run.start says the run starts after)."""

    def __init__(self, base_url: str) -> None:
        self.client = _http(base_url)

    async def run(self, count: int) -> Timing:
        thread_id = str(uuid.uuid4())
        timing = Timing(time.perf_counter())

        async def consume() -> None:
            reply = (await self.client.post(f"/threads/{thread_id}/commands", json=_start_command(count))).json()
            if reply.get("type") != "success":
                raise RuntimeError(str(reply))
            body = {"channels": ["messages", "lifecycle"], "since": reply["meta"]["applied_through_seq"]}
            lines = _SseLines()
            async with self.client.stream("POST", f"/threads/{thread_id}/stream/events", json=body) as response:
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}")
                async for chunk in response.aiter_raw():
                    first = timing.first is None
                    for name, data in lines.feed(chunk):
                        if name == b"messages" and _DELTA in data:
                            _mark(timing, first)
                        elif name == b"lifecycle" and _root_end(orjson.loads(data)):
                            return

        return await _timed(consume(), timing)

    async def aclose(self) -> None:
        await self.client.aclose()


class ProtocolWs:
    """Commands and events on one WebSocket: subscribe, then run.start."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url.replace("http://", "ws://")

    async def run(self, count: int) -> Timing:
        timing = Timing(time.perf_counter())

        async def consume() -> None:
            async with connect(f"{self.url}/threads/{uuid.uuid4()}/stream/events", max_size=None) as socket:
                subscribe = {
                    "id": 2,
                    "method": "subscription.subscribe",
                    "params": {"channels": ["messages", "lifecycle"]},
                }
                await socket.send(orjson.dumps(subscribe).decode())
                await socket.send(orjson.dumps(_start_command(count)).decode())
                async for frame in socket:
                    data = frame.encode() if isinstance(frame, str) else frame
                    if _DELTA in data:
                        _mark(timing, timing.first is None)
                    elif b'"method":"lifecycle"' in data and _root_end(orjson.loads(data)):
                        return
                    elif b'"type":"error"' in data:
                        raise RuntimeError(data.decode()[:300])

        return await _timed(consume(), timing)

    async def aclose(self) -> None:
        pass


class ProtocolGrpc:
    """One ThreadSession per run: open, subscribe, start the run; the call ends with the run."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.aio.insecure_channel(target, options=GRPC_OPTIONS)
        self.stub = sessions_pb2_grpc.SessionsServiceStub(self.channel)

    async def run(self, count: int) -> Timing:
        start = sessions_pb2.StartRun(assistant_id="tokens")
        json_format.ParseDict({"count": count}, start.input)
        requests = [
            sessions_pb2.SessionRequest(id=1, open=sessions_pb2.OpenSession(thread_id=str(uuid.uuid4()))),
            sessions_pb2.SessionRequest(id=2, subscribe=sessions_pb2.Subscribe(channels=["messages", "lifecycle"])),
            sessions_pb2.SessionRequest(id=3, start_run=start),
        ]
        timing = Timing(time.perf_counter())

        async def consume() -> None:
            async for response in self.stub.ThreadSession(iter(requests)):
                if response.HasField("error"):
                    raise RuntimeError(response.error.message)
                first = timing.first is None
                for event in response.events.events:
                    if event.method == sessions_pb2.EVENT_METHOD_MESSAGES and _DELTA in event.data_json.encode():
                        _mark(timing, first)
                    elif event.HasField("lifecycle") and not event.namespace:
                        if event.lifecycle.status == sessions_pb2.AGENT_STATUS_FAILED:
                            raise RuntimeError(event.lifecycle.error)

        return await _timed(consume(), timing)

    async def aclose(self) -> None:
        await self.channel.close()


@dataclass
class Tally:
    totals: list[float] = field(default_factory=list)
    deliveries: list[float] = field(default_factory=list)
    firsts: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    tokens: int = 0
    errors: list[str] = field(default_factory=list)


async def measure(
    clients: dict[str, Callable[[], TokenClient]],
    servers: dict[str, ServerProcess | None],
    *,
    count: int,
    runs: int,
    warmup: int,
) -> dict[str, Tally]:
    made = {key: make() for key, make in clients.items()}
    tallies = {key: Tally() for key in made}
    keys = list(made)
    try:
        for i in range(warmup + runs):
            order = keys[i % len(keys) :] + keys[: i % len(keys)]
            for key in order:
                server = servers.get(key)
                cpu = server.stats()["cpu"] if server else 0.0
                t = await made[key].run(count)
                tally = tallies[key]
                if t.error is not None or t.events != count:
                    tally.errors.append(t.error or f"{t.events} tokens of {count}")
                    continue
                if i < warmup or t.first is None:
                    continue
                if server:
                    tally.server_cpu += server.stats()["cpu"] - cpu
                tally.tokens += count
                tally.totals.append(count / t.latency)
                tally.firsts.append(t.first - t.start)
                if t.end > t.first:
                    tally.deliveries.append((count - t.at_first) / (t.end - t.first))
    finally:
        for client in made.values():
            await client.aclose()
    return tallies


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def report(tallies: dict[str, Tally], *, count: int) -> dict[str, Any]:
    rows: dict[str, dict[str, float | None]] = {}
    for key, tally in tallies.items():
        rows[key] = {
            "tokens_per_s": median(tally.totals),
            "delivery_tokens_per_s": median(tally.deliveries),
            "first_token_ms": (median(tally.firsts) or 0) * 1000 if tally.firsts else None,
            "server_cpu_us_per_token": tally.server_cpu / tally.tokens * 1e6
            if tally.tokens and key != "inprocess"
            else None,
        }
    ratios: dict[str, float | None] = {}

    def ratio(a: str, b: str, metric: str) -> None:
        x, y = rows.get(a, {}).get(metric), rows.get(b, {}).get(metric)
        ratios[f"{a} ÷ {b} ({metric})"] = x / y if x and y else None

    for ours in ("protocol_sse", "protocol_ws", "protocol_grpc"):
        for metric in ("tokens_per_s", "delivery_tokens_per_s", "server_cpu_us_per_token"):
            ratio(ours, "runs_sse", metric)
        for metric in ("tokens_per_s", "delivery_tokens_per_s"):
            ratio(ours, "ref_protocol_sse", metric)
            ratio(ours, "inprocess", metric)
    ratio("runs_sse", "ref_runs_sse", "tokens_per_s")
    ratio("ref_protocol_sse", "ref_runs_sse", "tokens_per_s")
    return {
        "count": count,
        "rows": rows,
        "ratios": ratios,
        "errors": {k: t.errors[:5] for k, t in tallies.items() if t.errors},
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Token stream: one model call streaming {result['count']} tokens; medians of {result['runs']} runs per target, "
        "targets interleaved run by run.",
        "",
        "| target | tokens/s | delivery tokens/s | first token (ms) | server CPU (µs/token) |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, row in result["rows"].items():
        lines.append(
            f"| {LABELS[key]} | {_fmt(row['tokens_per_s'])} | {_fmt(row['delivery_tokens_per_s'])} | "
            f"{_fmt(row['first_token_ms'])} | {_fmt(row['server_cpu_us_per_token'])} |"
        )
    lines += ["", "| ratio | value |", "|---|---:|"]
    for name, value in result["ratios"].items():
        if value is not None:
            a, _, rest = name.partition(" ÷ ")
            b, _, metric = rest.partition(" (")
            lines.append(f"| {LABELS[a]} ÷ {LABELS[b]} ({metric} | {value:.2f}× |")
    for key, errors in result["errors"].items():
        lines.append(f"\nErrors of {LABELS[key]}: " + "; ".join(errors))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench tokens", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="one short run per target; numbers mean nothing")
    parser.add_argument("--count", type=int, default=1000, help="tokens per run (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=15, help="measured runs per target (default: %(default)s)")
    parser.add_argument("--no-reference", action="store_true", help="leave the reference server out")
    return parser


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    count, runs, warmup = (100, 1, 1) if args.smoke else (args.count, args.runs, 3)
    with tempfile.TemporaryDirectory(prefix="bench-tokens-") as scratch:
        config = scratch_copy(Path(scratch))
        gateway = GatewayServer(config).start()
        reference: ReferenceServer | None = None
        try:
            exe = None if args.no_reference else ensure_reference_venv(create=not args.smoke)
            if exe is not None:
                reference = ReferenceServer(exe, config, jobs=8).start()
            url, target = f"http://127.0.0.1:{gateway.http_port}", f"127.0.0.1:{gateway.grpc_port}"
            clients: dict[str, Callable[[], TokenClient]] = {
                "inprocess": InProcess,
                "runs_sse": lambda: RunsSse(url),
                "runs_grpc": lambda: RunsGrpc(target),
                "protocol_sse": lambda: ProtocolSse(url),
                "protocol_ws": lambda: ProtocolWs(url),
                "protocol_grpc": lambda: ProtocolGrpc(target),
            }
            servers: dict[str, ServerProcess | None] = dict.fromkeys(clients, gateway)
            servers["inprocess"] = None
            if reference is not None:
                ref_url = f"http://127.0.0.1:{reference.port}"
                clients["ref_runs_sse"] = lambda: RunsSse(ref_url)
                clients["ref_protocol_sse"] = lambda: ProtocolSse(ref_url)
                servers["ref_runs_sse"] = servers["ref_protocol_sse"] = reference
            print(f"[bench tokens] {len(clients)} targets, {warmup} + {runs} runs of {count} tokens", file=sys.stderr)
            tallies = asyncio.run(measure(clients, servers, count=count, runs=runs, warmup=warmup))
        finally:
            gateway.stop()
            if reference is not None:
                reference.stop()
    result = {**report(tallies, count=count), "runs": runs, "smoke": args.smoke}
    text = markdown(result)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "tokens-smoke" if args.smoke else "tokens"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    (RESULTS / f"{name}.md").write_text(text + "\n")
    return 1 if result["errors"] else 0
