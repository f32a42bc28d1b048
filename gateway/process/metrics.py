"""Prometheus metrics of the edges, and their exposition on `GET /metrics`.

The run core's own metrics (runs, streams, events) are in gateway.core.metrics; the bridge
process imports this module only, so its endpoint shows its own HTTP requests.

Several processes serving one port (`--workers`) share one directory of metric files
(prometheus-client's multiprocess mode, `PROMETHEUS_MULTIPROC_DIR`, which the supervisor sets
before it forks): whichever worker answers a scrape reports the sum over all of them.
"""

from __future__ import annotations

import contextvars
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# No `*_created` series beside each counter and histogram: they double the exposition for a
# timestamp that Prometheus does not need.
disable_created_metrics()

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# The edge a call came in through ("grpc" or "http"), set by each edge's metrics middleware
# and inherited by what the call starts (its run's task, its readers).
edge: contextvars.ContextVar[str] = contextvars.ContextVar("gateway_edge", default="unknown")

# Seconds; a stream's "latency" is how long it stayed open.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

GRPC_STARTED = Counter(
    "grpc_server_started",
    "gRPC calls started, by method",
    ["grpc_service", "grpc_method", "grpc_type"],
)
GRPC_HANDLED = Counter(
    "grpc_server_handled",
    "gRPC calls finished, by method and status code",
    ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
)
GRPC_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Seconds from a gRPC call's start to its end (a stream's whole life)",
    ["grpc_service", "grpc_method", "grpc_type"],
    buckets=LATENCY_BUCKETS,
)
HTTP_REQUESTS = Counter(
    "langgraph_gateway_http_requests",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "langgraph_gateway_http_request_duration_seconds",
    "Seconds from an HTTP request to the end of its response (an event stream's whole life)",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
BACKEND_ERRORS = Counter(
    "langgraph_gateway_backend_errors",
    "Calls to a backend that failed because it could not be reached, by backend",
    ["backend"],
)
INTERNAL_ERRORS = Counter(
    "langgraph_gateway_internal_errors",
    "Unexpected errors answered with INTERNAL / 500 (each logged with an incident id), by edge",
    ["edge"],
)


def backend_error(backend: str) -> None:
    BACKEND_ERRORS.labels(backend).inc()


def internal_error(where: str) -> None:
    INTERNAL_ERRORS.labels(where).inc()


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def render() -> tuple[bytes, str]:
    """The text exposition of every metric of this process, or, in multiprocess mode, of all
    the processes sharing the metrics directory."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
