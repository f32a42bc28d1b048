"""OpenTelemetry traces, optional (`pip install 'langgraph-grpc-gateway[otel]'`): a span per gRPC
call (opentelemetry-instrumentation-grpc's aio server interceptor) and per HTTP request
(opentelemetry-instrumentation-asgi), each continuing the trace of the caller's `traceparent`
(gRPC metadata or HTTP header), and a span per run, a child of the call that created it, with
the run's, thread's and assistant's ids. The bridge's calls to the gateway carry the trace on.

On with `--otel`, or when the standard variables ask for it (`OTEL_TRACES_EXPORTER` other than
`none`, or `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); off with
`OTEL_SDK_DISABLED=true`. Spans go to the OTLP exporter (`OTEL_EXPORTER_OTLP_PROTOCOL` grpc, the
default, or http/protobuf) or, with `OTEL_TRACES_EXPORTER=console`, to stdout; a tracer provider
that the process already has (`opentelemetry-instrument`, or a test's) is used as it is.

Everything here is a no-op while tracing is off, and OpenTelemetry is then never imported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from gateway.shared.errors import StartupError

# The gRPC services whose calls get no span: probes and tooling, not traffic.
_UNTRACED_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)
# Likewise for HTTP (regular expressions, as OTEL_PYTHON_ASGI_EXCLUDED_URLS takes them).
_UNTRACED_URLS = r"/ok(\?.*)?$,/metrics(\?.*)?$"
_INSTALL = "pip install 'langgraph-grpc-gateway[otel]'"

_provider: Any = None
_tracer: Any = None
# A provider made here, flushed and shut down by shutdown().
_owned: Any = None


def wanted(flag: bool) -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if flag:
        return True
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def enabled() -> bool:
    return _tracer is not None


def setup(flag: bool, service_name: str) -> bool:
    """Turns tracing on when asked for; returns whether it is on."""
    global _provider, _tracer, _owned
    if not wanted(flag):
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise StartupError(f"tracing (--otel or OTEL_* variables) needs OpenTelemetry: {_INSTALL}") from None
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        # Nobody configured one (the API's default is a no-op proxy): one from the variables.
        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
        provider = TracerProvider(resource=Resource.create(attributes))
        provider.add_span_processor(BatchSpanProcessor(_exporter()))
        trace.set_tracer_provider(provider)
        _owned = provider
    _provider = provider
    _tracer = provider.get_tracer("gateway")
    return True


def _exporter() -> Any:
    name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise StartupError(f"OTEL_TRACES_EXPORTER={name}: the gateway exports traces with otlp or console")
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    )
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        elif protocol == "http/protobuf":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
                OTLPSpanExporter,
            )
        else:
            raise StartupError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: the gateway exports with grpc or http/protobuf"
            )
    except ImportError:
        raise StartupError(f"the OTLP exporter is not installed: {_INSTALL}") from None
    return OTLPSpanExporter()


def shutdown() -> None:
    """Sends the spans still buffered (a provider made here only)."""
    global _provider, _tracer, _owned
    if _owned is not None:
        _owned.shutdown()
    _provider = _tracer = _owned = None


def grpc_server_interceptors() -> tuple[Any, ...]:
    if _provider is None:
        return ()
    from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

    untraced = filters.any_of(*(filters.service_name(name) for name in _UNTRACED_SERVICES))
    return (aio_server_interceptor(tracer_provider=_provider, filter_=filters.negate(untraced)),)


def grpc_client_interceptors() -> list[Any] | None:
    if _provider is None:
        return None
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors(tracer_provider=_provider))


def instrument_app(app: Any) -> None:
    """Wraps a Starlette app (before it starts) in the ASGI instrumentation, outermost."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    excluded = os.environ.get("OTEL_PYTHON_ASGI_EXCLUDED_URLS") or _UNTRACED_URLS
    # No span per `send` and `receive`: an event stream makes thousands.
    app.add_middleware(
        OpenTelemetryMiddleware, tracer_provider=_provider, excluded_urls=excluded, exclude_spans=["receive", "send"]
    )


def current_context() -> Any:
    """The trace context a run created now continues (None while tracing is off)."""
    if _tracer is None:
        return None
    from opentelemetry import context

    return context.get_current()


def annotate(attributes: Mapping[str, Any]) -> None:
    """Puts attributes on the current span (the call's), if any."""
    if _tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attributes(attributes)


def name_request(method: str, route: str) -> None:
    """Names the current HTTP request's span after its route template, known once it was routed."""
    if _tracer is None:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)


@contextmanager
def run_span(name: str, parent: Any, attributes: Mapping[str, Any]) -> Iterator[Any]:
    """The span of a run's execution, a child of `parent` (the context it was created in)."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(
        name, context=parent, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as span:
        yield span


def end_run_span(span: Any, status: str) -> None:
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("langgraph.run.status", status)
    if status in ("error", "timeout"):
        span.set_status(Status(StatusCode.ERROR, f"the run ended with {status}"))
