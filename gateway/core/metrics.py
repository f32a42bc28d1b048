"""The run core's Prometheus metrics: runs created and finished, runs queued and running, open
streams, events delivered and how long they took to get out, readers dropped for being slow.

Kept cheap on the event path: events are counted per batch, and the delay of a batch is
observed once, for its oldest event (gateway.core.channel stamps the first event a reader has
not yet taken)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

from gateway.metrics import edge
from gateway.records import Event

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
SLOW_DROPPED = Counter(
    "langgraph_gateway_slow_subscribers_dropped",
    "Readers detached because they held a run back for longer than the stall timeout",
)

# Bound children, so that the event path does no label lookup.
_delivered: dict[tuple[str, str], Counter] = {}
_delay: dict[str, Histogram] = {}


def delivered(events: Sequence[Event]) -> None:
    where = edge.get()
    if len(events) == 1:
        _delivered_child(where, events[0].name).inc()
        return
    counts: dict[str, int] = {}
    for event in events:
        name = event.name
        counts[name] = counts.get(name, 0) + 1
    for name, count in counts.items():
        _delivered_child(where, name).inc(count)


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
    """Counts a stream as open from its creation until `close()` (idempotent)."""

    __slots__ = ("_gauge",)

    def __init__(self, kind: str) -> None:
        self._gauge: Gauge | None = OPEN_STREAMS.labels(edge.get(), kind)
        self._gauge.inc()

    def close(self) -> None:
        if self._gauge is not None:
            self._gauge.dec()
            self._gauge = None
