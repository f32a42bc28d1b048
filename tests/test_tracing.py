"""OpenTelemetry traces: the gateway serves in this process (gateway.cli.serve, --otel) with a
tracer provider whose spans go to the SDK's in-memory exporter; real gRPC and HTTP clients
call it with a `traceparent` of their own, and the spans of the call and of the run it created
continue that trace, with the run's ids on them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from langgraph.gateway.v1 import runs_pb2, runs_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway.cli import serve
from gateway.process import tracing
from gateway.shared.settings import Settings
from tests._server import TEST_CONFIG
from tests.rpc.test_run_stream import value

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"

_exporter = InMemorySpanExporter()


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    # The global provider can be set once per process: this module's is the one.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_exporter))
    trace.set_tracer_provider(provider)
    return _exporter


@contextlib.asynccontextmanager
async def served(tmp_path: Path) -> AsyncIterator[dict[str, int]]:
    ports: dict[str, int] = {}
    ready = asyncio.Event()

    def on_ready(**given: int) -> None:
        ports.update(given)
        ready.set()

    settings = Settings(
        config=str(TEST_CONFIG), db=str(tmp_path / "db.sqlite"), grpc_port=0, http_port=0, grace=1, otel=True
    )
    thresholds = gc.get_threshold()
    task = asyncio.create_task(serve(settings, ready=on_ready))
    try:
        async with asyncio.timeout(60):
            await ready.wait()
        yield ports
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # serve() tunes the collector for a server's life; this process goes on testing.
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def _hex(number: int, width: int) -> str:
    return format(number, f"0{width}x")


async def _spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    # A server's span ends just after its response went out.
    for _ in range(100):
        found = [s for s in exporter.get_finished_spans() if s.name == name]
        if found:
            return found
        await asyncio.sleep(0.05)
    names = sorted({s.name for s in exporter.get_finished_spans()})
    raise AssertionError(f"no span {name!r}; spans: {names}")


def _one(spans: Sequence[ReadableSpan], **attributes: Any) -> ReadableSpan:
    matching = [s for s in spans if all(s.attributes and s.attributes.get(k) == v for k, v in attributes.items())]
    assert len(matching) == 1, [dict(s.attributes or {}) for s in spans]
    return matching[0]


def _ids(span: ReadableSpan, run_id: str, thread_id: str, assistant_id: str) -> None:
    attributes = span.attributes or {}
    assert attributes["langgraph.run.id"] == run_id
    assert attributes["langgraph.thread.id"] == thread_id
    assert attributes["langgraph.assistant.id"] == assistant_id


async def test_grpc_calls_and_their_runs_continue_the_callers_trace(
    exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    async with served(tmp_path) as ports:
        metadata = (("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),)
        request = runs_pb2.CreateRunRequest(
            assistant_id="burst", input=value({"n": 3}), stream_mode=[runs_pb2.STREAM_MODE_CUSTOM]
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ports['grpc_port']}") as channel:
            events = [e async for e in runs_pb2_grpc.RunsServiceStub(channel).RunStream(request, metadata=metadata)]
        run_id, thread_id = events[0].metadata.run_id, events[0].metadata.thread_id
        assert events[-1].end.status == runs_pb2.RUN_STATUS_SUCCESS

        rpc = _one(
            await _spans(exporter, "/langgraph.gateway.v1.RunsService/RunStream"), **{"langgraph.run.id": run_id}
        )
        assert rpc.kind == SpanKind.SERVER
        assert _hex(rpc.context.trace_id, 32) == TRACE_ID
        assert rpc.parent is not None and _hex(rpc.parent.span_id, 16) == PARENT_ID
        assistant_id = str((rpc.attributes or {})["langgraph.assistant.id"])
        _ids(rpc, run_id, thread_id, assistant_id)

        run = _one(await _spans(exporter, "run burst"), **{"langgraph.run.id": run_id})
        assert run.context.trace_id == rpc.context.trace_id
        assert run.parent is not None and run.parent.span_id == rpc.context.span_id
        _ids(run, run_id, thread_id, assistant_id)
        assert (run.attributes or {})["langgraph.graph.id"] == "burst"
        assert (run.attributes or {})["langgraph.run.status"] == "success"


async def test_http_requests_and_their_runs_continue_the_callers_trace(
    exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    async with served(tmp_path) as ports, httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['http_port']}") as http:
        thread_id = (await http.post("/threads", json={})).json()["thread_id"]
        headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
        body = {"assistant_id": "agent", "input": {"topic": "x"}}
        answer = await http.post(f"/threads/{thread_id}/runs/wait", json=body, headers=headers)
        assert answer.status_code == 200
        run_id = answer.headers["content-location"].rsplit("/", 1)[1]

        request = _one(await _spans(exporter, "POST /threads/{thread_id}/runs/wait"), **{"langgraph.run.id": run_id})
        assert request.kind == SpanKind.SERVER
        assert _hex(request.context.trace_id, 32) == TRACE_ID
        assert (request.attributes or {})["http.route"] == "/threads/{thread_id}/runs/wait"
        run = _one(await _spans(exporter, "run agent"), **{"langgraph.run.id": run_id})
        assert run.parent is not None and run.parent.span_id == request.context.span_id
        _ids(run, run_id, thread_id, str((request.attributes or {})["langgraph.assistant.id"]))


async def test_the_bridges_client_interceptors_carry_the_trace_to_the_gateway(
    exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    async with served(tmp_path) as ports:
        # What the bridge's channel to the gateway gets (gateway.bridge.backend).
        interceptors = tracing.grpc_client_interceptors()
        assert interceptors
        tracer = trace.get_tracer("test")
        request = runs_pb2.CreateRunRequest(assistant_id="agent", input=value({"topic": "x"}))
        with tracer.start_as_current_span("bridge request") as outer:
            async with grpc.aio.insecure_channel(
                f"127.0.0.1:{ports['grpc_port']}", interceptors=interceptors
            ) as channel:
                result = await runs_pb2_grpc.RunsServiceStub(channel).WaitRun(request)
        rpc = _one(
            await _spans(exporter, "/langgraph.gateway.v1.RunsService/WaitRun"),
            **{"langgraph.run.id": result.run.run_id},
        )
        assert rpc.kind == SpanKind.SERVER
        assert rpc.context.trace_id == outer.get_span_context().trace_id


@pytest.mark.parametrize(
    ("flag", "env", "on"),
    [
        (False, {}, False),
        (True, {}, True),
        (False, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, True),
        (False, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        (False, {"OTEL_TRACES_EXPORTER": "console"}, True),
        (False, {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, False),
        (True, {"OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_tracing_is_on_when_the_flag_or_the_standard_variables_ask(
    monkeypatch: pytest.MonkeyPatch, flag: bool, env: dict[str, str], on: bool
) -> None:
    for name in (
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, setting in env.items():
        monkeypatch.setenv(name, setting)
    assert tracing.wanted(flag) is on
