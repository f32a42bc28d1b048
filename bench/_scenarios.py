"""The scenarios, run against every target interleaved: each round runs once per target, in an
order that rotates from round to round, so that whatever else the machine does in the
meantime falls on every target alike and the ratios stay fair. Warm-up runs are excluded;
every run is checked for errors and for the number of events it should stream."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench._background import InLoop, InWorker, Load, LoadTally
from bench._clients import Client, Timing
from bench._servers import ServerProcess
from bench._stats import median, percentile
from bench.graphs import CHAIN_LENGTH

T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    smoke: bool
    small_runs: int
    small_warmup: int
    burst_runs: int
    burst_warmup: int
    concurrency: tuple[int, ...]
    # Each level runs at least this many streams in all, in rounds of `level` at once.
    concurrency_runs: int
    payload_runs: int
    payload_warmup: int
    open_streams: int
    # How long a server gets to settle before its memory is read.
    settle_s: float = 2.0
    burst_events: int = 1000
    # A level's events/s is the median of its rounds. The in-process floor's 32 chains went from
    # 1,669 to 3,018 events/s between rounds of one run: two rounds could land anywhere. With 5,
    # two processes ÷ one on 32 chains (issue 10's target) moved by ±0.15 from run to run.
    concurrency_min_rounds: int = 15
    # Streams of the chain run at once, before the concurrency levels are measured.
    chain_warmup: int = 8
    payload_sizes: tuple[int, ...] = (1024, 64 * 1024, 1024 * 1024)
    # Stateful under load: clients streaming token runs in the background at each level, and
    # per level, `stateful_rounds` rounds (the load restarted for every target) of
    # `stateful_pairs` pairs of small runs, one on a thread and one stateless.
    stateful_load: tuple[int, ...] = (0, 2, 6)
    stateful_rounds: int = 4
    stateful_pairs: int = 6
    stateful_warmup: int = 3
    # Scale-out timings (bench._failover), on two replicas of their own with this lease.
    takeover_trials: int = 5
    cancel_trials: int = 10
    lease_seconds: float = 2.0

    def rounds(self, level: int) -> int:
        return max(self.concurrency_min_rounds, math.ceil(self.concurrency_runs / level))


FULL = Plan(
    smoke=False,
    small_runs=200,
    small_warmup=20,
    burst_runs=20,
    burst_warmup=3,
    concurrency=(1, 8, 32, 128),
    concurrency_runs=64,
    payload_runs=10,
    payload_warmup=2,
    open_streams=1000,
)

# Every scenario and code path once, as little as possible of each: for CI, never for numbers.
SMOKE = Plan(
    smoke=True,
    small_runs=3,
    small_warmup=1,
    burst_runs=1,
    burst_warmup=0,
    concurrency=(1, 8),
    concurrency_runs=1,
    concurrency_min_rounds=1,
    chain_warmup=0,
    payload_runs=1,
    payload_warmup=0,
    open_streams=20,
    settle_s=0.5,
    stateful_load=(0, 2),
    stateful_rounds=1,
    stateful_pairs=1,
    stateful_warmup=0,
    takeover_trials=1,
    cancel_trials=2,
)

# What `measure` runs, in order, and what `--scenarios` selects from; then the scale-out timings
# on two replicas of their own (bench._failover), and open streams on fresh servers (see
# bench.__main__).
SCENARIOS = (
    "small",
    "long_stream",
    "concurrency",
    "payloads",
    "stateful_load",
    "cancel",
    "takeover",
    "open_streams",
)


@dataclass
class Errors:
    count: int = 0
    samples: list[str] = field(default_factory=list)

    def check(self, scenario: str, timing: Timing, expected: int) -> bool:
        if timing.error is None and timing.events == expected:
            return True
        self.add(scenario, timing.error or f"expected {expected} events, got {timing.events}")
        return False

    def add(self, scenario: str, message: str) -> None:
        self.count += 1
        if len(self.samples) < 10:
            self.samples.append(f"{scenario}: {message}")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _spread(values: list[float]) -> dict[str, float | None]:
    return {"p50": _ms(median(values)), "p99": _ms(percentile(values, 99))}


@dataclass
class Target:
    """One way of running the graphs: its client, its server process (none in-process), and
    what it has cost so far, counted only while its own runs were going."""

    key: str
    client: Client
    server: ServerProcess | None
    # Makes more clients of the same kind (the background load's).
    make: Callable[[], Client] | None = None
    errors: Errors = field(default_factory=Errors)
    server_cpu: float = 0.0
    client_cpu: float = 0.0

    async def metered(self, work: Awaitable[T]) -> T:
        server = self.server.stats()["cpu"] if self.server else 0.0
        client = time.process_time()
        try:
            return await work
        finally:
            self.client_cpu += time.process_time() - client
            if self.server:
                self.server_cpu += self.server.stats()["cpu"] - server

    def reset_meter(self) -> None:
        self.server_cpu = self.client_cpu = 0.0

    def per_event(self, events: int) -> dict[str, float | None]:
        if not events:
            return {"server_cpu_us_per_event": None, "client_cpu_us_per_event": None}
        return {
            "server_cpu_us_per_event": self.server_cpu / events * 1e6 if self.server else None,
            "client_cpu_us_per_event": self.client_cpu / events * 1e6,
        }


def _rotations(targets: list[Target], rounds: int) -> list[list[Target]]:
    """Round i starts with target i (mod n): no target always runs first or last."""
    n = len(targets)
    return [targets[i % n :] + targets[: i % n] for i in range(rounds)]


async def small_runs(targets: list[Target], plan: Plan) -> dict[str, dict[str, Any]]:
    latencies: dict[str, list[float]] = {t.key: [] for t in targets}
    firsts: dict[str, list[float]] = {t.key: [] for t in targets}
    for i, order in enumerate(_rotations(targets, plan.small_warmup + plan.small_runs)):
        for target in order:
            t = await target.client.run("two_node", {"n": 0}, "updates")
            if target.errors.check("small run", t, 2) and i >= plan.small_warmup:
                latencies[target.key].append(t.latency)
                firsts[target.key].append(t.to_first or 0.0)
    return {
        t.key: {
            "runs": len(latencies[t.key]),
            "latency_ms": _spread(latencies[t.key]),
            "first_event_ms": _spread(firsts[t.key]),
        }
        for t in targets
    }


async def long_stream(targets: list[Target], plan: Plan) -> dict[str, dict[str, Any]]:
    n = plan.burst_events
    rates: dict[str, list[float]] = {t.key: [] for t in targets}
    delivery: dict[str, list[float]] = {t.key: [] for t in targets}
    batched: dict[str, list[float]] = {t.key: [] for t in targets}
    for i, order in enumerate(_rotations(targets, plan.burst_warmup + plan.burst_runs)):
        if i == plan.burst_warmup:
            for target in targets:
                target.reset_meter()
        for target in order:
            t = await target.metered(target.client.run("burst", {"count": n}, "custom"))
            if not target.errors.check("long stream", t, n) or i < plan.burst_warmup or t.first is None:
                continue
            # From the request to the last event: what a client waits for the whole stream.
            rates[target.key].append(n / t.latency)
            # After the first arrival only, and only the events that came later: a transport
            # that delivers in batches gets no credit for the events of its first batch.
            if t.events > t.at_first:
                delivery[target.key].append((t.events - t.at_first) / max(t.end - t.first, 1e-9))
            batched[target.key].append(t.at_first)
    return {
        t.key: {
            "runs": len(rates[t.key]),
            "events": n,
            "events_per_s": median(rates[t.key]),
            "delivery_events_per_s": median(delivery[t.key]),
            "events_in_first_read": median(batched[t.key]),
            **t.per_event(n * len(rates[t.key])),
        }
        for t in targets
    }


async def _round(target: Target, level: int) -> tuple[list[Timing], float]:
    async def runs() -> list[Timing]:
        return list(await asyncio.gather(*(target.client.run("chain", {"n": 0}, "updates") for _ in range(level))))

    start = time.perf_counter()
    timings = await target.metered(runs())
    return timings, time.perf_counter() - start


async def concurrent_chains(targets: list[Target], plan: Plan) -> dict[str, dict[str, Any]]:
    if plan.chain_warmup:
        for target in targets:
            for t in (await _round(target, plan.chain_warmup))[0]:
                target.errors.check("chains warm-up", t, CHAIN_LENGTH)
    out: dict[str, dict[str, Any]] = {t.key: {} for t in targets}
    for level in plan.concurrency:
        rates: dict[str, list[float]] = {t.key: [] for t in targets}
        latencies: dict[str, list[float]] = {t.key: [] for t in targets}
        events = dict.fromkeys(rates, 0)
        for target in targets:
            target.reset_meter()
        for order in _rotations(targets, plan.rounds(level)):
            for target in order:
                timings, wall = await _round(target, level)
                ok = [t for t in timings if target.errors.check(f"{level} concurrent chains", t, CHAIN_LENGTH)]
                events[target.key] += sum(t.events for t in ok)
                rates[target.key].append(sum(t.events for t in ok) / wall)
                latencies[target.key].extend(t.latency for t in ok)
        for target in targets:
            out[target.key][str(level)] = {
                "streams": level,
                "runs": len(latencies[target.key]),
                "events_per_s": median(rates[target.key]),
                "latency_ms": _spread(latencies[target.key]),
                **target.per_event(events[target.key]),
            }
    return out


async def payloads(targets: list[Target], plan: Plan) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {t.key: {} for t in targets}
    for size in plan.payload_sizes:
        latencies: dict[str, list[float]] = {t.key: [] for t in targets}
        for i, order in enumerate(_rotations(targets, plan.payload_warmup + plan.payload_runs)):
            for target in order:
                timing = await target.client.run("payload", {"size": size}, "values")
                if target.errors.check(f"values of {size} B", timing, 2) and i >= plan.payload_warmup:
                    latencies[target.key].append(timing.latency)
        for target in targets:
            out[target.key][str(size)] = {
                "bytes": size,
                "runs": len(latencies[target.key]),
                "ms_per_run": _ms(median(latencies[target.key])),
            }
    return out


def _load_rate(tallies: list[LoadTally]) -> float | None:
    seconds = sum(t.seconds for t in tallies)
    return sum(t.events for t in tallies) / seconds if seconds else None


async def stateful_load(targets: list[Target], plan: Plan) -> dict[str, dict[str, Any]]:
    """Whether runs on a thread starve while other clients stream long runs. At each level, that
    many clients stream 1,000-event token runs back to back (a server's over its own
    transport, from a worker process; the floor's in the same loop, see bench._background)
    while one more client does small runs one at a time, alternating a run on a thread (a new
    run each time on one thread made beforehand, as a conversation goes on) with a stateless
    one: both see the same load, and their ratio is what the fix is judged by. The floor's
    stateful runs use an InMemorySaver. Each round restarts the load for each target in turn."""
    ready: list[tuple[Target, str]] = []
    for target in targets:
        try:
            ready.append((target, await target.client.create_thread()))
        except Exception as exc:
            target.errors.add("stateful under load", f"creating a thread: {type(exc).__name__}: {exc}"[:300])
    threads = {target.key: thread for target, thread in ready}
    n = plan.burst_events

    async def pair(target: Target, i: int, record: dict[str, list[float]] | None) -> None:
        # The order alternates: neither variant always runs right after the other.
        for variant in ("stateful", "stateless") if i % 2 == 0 else ("stateless", "stateful"):
            thread_id = threads[target.key] if variant == "stateful" else None
            t = await target.client.run("two_node", {"n": 0}, "updates", thread_id=thread_id)
            if target.errors.check(f"{variant} small run", t, 2) and record is not None:
                record[variant].append(t.latency)

    async def under_load(load: Load, target: Target, streams: int, record: dict[str, list[float]]) -> LoadTally:
        scenario = f"{streams} streaming"
        tally = LoadTally()
        try:
            if streams:
                assert target.make is not None
                await load.start(target.make, streams)
            for i in range(plan.stateful_pairs):
                await pair(target, i, record)
        except Exception as exc:
            target.errors.add(scenario, f"background load: {type(exc).__name__}: {exc}"[:300])
        finally:
            if streams:
                try:
                    tally = await load.stop()
                except Exception as exc:
                    tally.error(f"stopping: {type(exc).__name__}: {exc}"[:300])
        for sample in tally.samples:
            target.errors.add(f"{scenario}: token run", sample)
        target.errors.count += tally.errors - len(tally.samples)
        return tally

    for target, _ in ready:
        for i in range(plan.stateful_warmup):
            await pair(target, i, None)
    # The floor's load runs in this loop, a server's in a worker process.
    floor_load, server_load = InLoop(n), InWorker(n)
    out: dict[str, dict[str, Any]] = {target.key: {} for target, _ in ready}
    try:
        for level in plan.stateful_load:
            latencies: dict[str, dict[str, list[float]]] = {key: {"stateful": [], "stateless": []} for key in out}
            tallies: dict[str, list[LoadTally]] = {key: [] for key in out}
            for order in _rotations([target for target, _ in ready], plan.stateful_rounds):
                for target in order:
                    load = floor_load if target.server is None else server_load
                    tallies[target.key].append(await under_load(load, target, level, latencies[target.key]))
            for key, runs in latencies.items():
                stateful, stateless = median(runs["stateful"]), median(runs["stateless"])
                out[key][str(level)] = {
                    "streams": level,
                    "stateful": {"runs": len(runs["stateful"]), "latency_ms": _spread(runs["stateful"])},
                    "stateless": {"runs": len(runs["stateless"]), "latency_ms": _spread(runs["stateless"])},
                    "stateful_over_stateless": stateful / stateless if stateful and stateless else None,
                    "load_events_per_s": _load_rate(tallies[key]),
                }
    finally:
        await floor_load.aclose()
        await server_load.aclose()
    return out


async def _settled(server: ServerProcess, seconds: float) -> dict[str, float]:
    await asyncio.sleep(seconds)
    return server.stats()


async def open_streams(target: Target, plan: Plan) -> dict[str, Any]:
    """RSS and threads of the server before, while `n` streams of an idle run are open, and after."""
    assert target.server is not None
    client, server, errors, n = target.client, target.server, target.errors, plan.open_streams
    before = await _settled(server, plan.settle_s)
    stop = asyncio.Event()
    all_open = asyncio.Event()
    opened = 0

    def on_open() -> None:
        nonlocal opened
        opened += 1
        if opened == n:
            all_open.set()

    start = time.perf_counter()
    holders = [asyncio.create_task(client.hold("slow", {"seconds": 900}, on_open, stop)) for _ in range(n)]
    waiter = asyncio.create_task(all_open.wait())
    try:
        # Ends early if a stream fails to open.
        pending: set[asyncio.Task[Any]] = {waiter, *holders}
        deadline = start + 180
        while not all_open.is_set() and time.perf_counter() < deadline:
            done, pending = await asyncio.wait(
                pending, timeout=deadline - time.perf_counter(), return_when="FIRST_COMPLETED"
            )
            if any(t is not waiter and t.exception() is not None for t in done):
                break
        open_s = time.perf_counter() - start
        during = await _settled(server, plan.settle_s)
    finally:
        stop.set()
        waiter.cancel()
        results = await asyncio.gather(*holders, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            errors.add("open streams", f"{type(r).__name__}: {r}"[:300])
    if opened < n:
        errors.add("open streams", f"only {opened} of {n} streams opened")
    after = await _settled(server, 2.5 * plan.settle_s)
    # The server still serves once they are gone.
    errors.check("after open streams", await client.run("two_node", {"n": 0}, "updates"), 2)
    return {
        "streams": n,
        "opened": opened,
        "open_s": open_s,
        "rss_before_mb": before["rss"] / 2**20,
        "rss_open_mb": during["rss"] / 2**20,
        "rss_after_mb": after["rss"] / 2**20,
        "kb_per_stream": (during["rss"] - before["rss"]) / max(opened, 1) / 1024,
        "threads_before": before["threads"],
        "threads_open": during["threads"],
        "threads_after": after["threads"],
    }


LONG_STREAM_ONLY = frozenset({"raw_grpc"})


async def measure(
    clients: Mapping[str, Callable[[], Client]],
    servers: Mapping[str, ServerProcess | None],
    plan: Plan,
    *,
    log: Callable[[str], None],
    scenarios: Collection[str] = SCENARIOS,
) -> dict[str, dict[str, Any]]:
    """The `scenarios` but open streams against every target, interleaved."""
    # Clients are made here: grpc.aio channels belong to the event loop they are made in.
    targets = [Target(key, make(), servers.get(key), make) for key, make in clients.items()]
    out: dict[str, dict[str, Any]] = {t.key: {"label": t.client.name} for t in targets}
    try:
        for name, scenario in (
            ("small", small_runs),
            ("long_stream", long_stream),
            ("concurrency", concurrent_chains),
            ("payloads", payloads),
            ("stateful_load", stateful_load),
        ):
            if name not in scenarios:
                continue
            log(name.replace("_", " "))
            selected = targets
            if name != "long_stream":
                # The raw grpc.aio floor serves the long stream's messages only.
                selected = [t for t in targets if t.key not in LONG_STREAM_ONLY]
            if name == "stateful_load":
                # The reference takes about a second a run, and this scenario does dozens of
                # runs per level: minutes more, for a question about our gateway only.
                selected = [t for t in selected if t.key != "reference"]
            for key, result in (await scenario(selected, plan)).items():
                out[key][name] = result
    finally:
        for target in targets:
            await target.client.aclose()
    for target in targets:
        out[target.key]["errors"] = {"count": target.errors.count, "samples": target.errors.samples}
    return out


async def measure_open_streams(
    key: str, make_client: Callable[[], Client], server: ServerProcess, plan: Plan
) -> tuple[dict[str, Any], Errors]:
    """Open streams against one server of its own, so that no other scenario's garbage (or
    memory freed by it, that the next streams reuse) blurs its memory."""
    target = Target(key, make_client(), server)
    try:
        # Warm: lazy imports and first-use caches are not per-stream memory.
        for _ in range(5):
            target.errors.check("open streams warm-up", await target.client.run("two_node", {"n": 0}, "updates"), 2)
        return await open_streams(target, plan), target.errors
    finally:
        await target.client.aclose()
