"""The run core's Prometheus metrics: runs created and finished, runs queued and running, open
streams, events delivered and how long they took to get out, readers dropped for being slow.

Kept cheap on the event path: a stream counts its events in a dict and hands the counts over
in bulk, and the event delay is observed for a sample of batches, each once, for its oldest
event (gateway.core.channel stamps the first event a reader has yet to take)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

from gateway.process.metrics import edge
from gateway.shared.records import Event

RUNS_CREATED = Counter(
    "langgraph_gateway_runs_created",
    "Runs admitted, by graph and the edge that created them",
    ["graph", "edge"],
)
RUNS_FINISHED = Counter(
    "langgraph_gateway_runs_finished",
    "Runs that ended in this process, by graph, final status and the edge that created them "
    "(unknown: created in another process)",
    ["graph", "status", "edge"],
)
RUNS_RUNNING = Gauge(
    "langgraph_gateway_runs_running",
    "Runs this process executes now",
    multiprocess_mode="livesum",
)
RUNS_QUEUED = Gauge(
    "langgraph_gateway_runs_queued",
    "Runs waiting in the queue for a process to execute them (the whole deployment's, read from "
    "storage at each scrape)",
    multiprocess_mode="livemostrecent",
)
OPEN_STREAMS = Gauge(
    "langgraph_gateway_open_streams",
    "Streams open now, by edge and kind (run: a run created and streamed; join: a run joined; "
    "thread: a thread's stream; session: a thread protocol session)",
    ["edge", "kind"],
    multiprocess_mode="livesum",
)
EVENTS_DELIVERED = Counter(
    "langgraph_gateway_events_delivered",
    "Run events written to run and join streams, by edge and stream mode (the event's name)",
    ["edge", "mode"],
)
EVENT_DELAY = Histogram(
    "langgraph_gateway_event_delay_seconds",
    "Seconds from the publication of the oldest event of a batch a reader took to the moment "
    "that reader had written the batch (one observation per batch)",
    ["edge"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SUBSCRIPTIONS = Gauge(
    "langgraph_gateway_protocol_subscriptions",
    "Thread protocol subscriptions following their thread now, each with a reader on its runs",
    multiprocess_mode="livesum",
)
SLOW_DROPPED = Counter(
    "langgraph_gateway_slow_subscribers_dropped",
    "Readers detached because they held a run back for longer than the stall timeout",
)

# A stream hands its counts of delivered events to Prometheus every this many batches, or on
# the first batch this many seconds after its last hand-over, and when it closes: a batch then
# costs a few dict updates rather than a counter's lock per event name.
_FLUSH_BATCHES = 32
_FLUSH_SECONDS = 1.0
# The event delay is observed for one batch in this many of each reader (its first included).
DELAY_SAMPLE = 16

# Bound children, so that no label lookup is repeated.
_delivered: dict[tuple[str, str], Counter] = {}
_delay: dict[str, Histogram] = {}


def _delivered_child(where: str, name: str) -> Counter:
    child = _delivered.get((where, name))
    if child is None:
        child = _delivered[(where, name)] = EVENTS_DELIVERED.labels(where, name)
    return child


def delayed(seconds: float) -> None:
    where = edge.get()
    child = _delay.get(where)
    if child is None:
        child = _delay[where] = EVENT_DELAY.labels(where)
    child.observe(seconds)


class OpenStream:
    """A stream, counted open from its creation until `close()` (idempotent), and the events it
    delivered, handed to Prometheus in bulk: at most a second late while it streams, exactly
    once it closed."""

    __slots__ = ("_batches", "_counts", "_edge", "_flushed_at", "_gauge")

    def __init__(self, kind: str) -> None:
        self._edge = edge.get()
        self._gauge: Gauge | None = OPEN_STREAMS.labels(self._edge, kind)
        self._gauge.inc()
        self._counts: dict[str, int] = {}
        self._batches = 0
        self._flushed_at = time.monotonic()

    def delivered(self, events: Sequence[Event]) -> None:
        counts = self._counts
        for event in events:
            name = event.name
            counts[name] = counts.get(name, 0) + 1
        self._batches += 1
        if self._batches >= _FLUSH_BATCHES or time.monotonic() - self._flushed_at >= _FLUSH_SECONDS:
            self._flush()

    def _flush(self) -> None:
        for name, count in self._counts.items():
            _delivered_child(self._edge, name).inc(count)
        self._counts.clear()
        self._batches = 0
        self._flushed_at = time.monotonic()

    def close(self) -> None:
        if self._gauge is not None:
            self._flush()
            self._gauge.dec()
            self._gauge = None
