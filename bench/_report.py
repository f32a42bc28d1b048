"""The results as one table of medians with the ratios between the servers and against the
in-process floor, the targets of issue 5 (and the stateful-under-load goal) marked PASS or FAIL,
as markdown and as JSON; beside it, per transport, the scale-out deployments against the sqlite
default with issue 10's targets, and the takeover and cancel timings with their goals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

COLUMNS = {
    "inprocess": "in-process astream",
    "reference": "reference SSE",
    "sse": "ours SSE",
    "grpc": "ours gRPC",
    "grpc_batch": "ours gRPC batch",
    # The light Python client's runs.stream (over RunStreamBatch), and RunStreamBatch over the
    # Connect protocol on the HTTP port (what a browser uses).
    "client": "ours, Python client",
    # A plain grpc.aio server streaming pre-encoded messages of the long stream's mean size:
    # grpcio's own cost per message, the floor of RunStream (bench._raw).
    "raw_grpc": "raw grpc.aio",
    "connect": "ours, Connect",
    # The same over HTTP/2 in cleartext (h2c, prior knowledge), as connect-node with httpVersion "2".
    "connect_h2": "ours, Connect h2c",
    # Scale-out deployments on Postgres + Redis: one process, two replicas (each on its own
    # ports, runs spread round-robin over them), `--workers 2` (two processes on one port).
    "pg_sse": "ours SSE, pg+redis",
    "pg_batch": "ours gRPC batch, pg+redis",
    "pg2_sse": "ours SSE, 2 replicas",
    "pg2_batch": "ours gRPC batch, 2 replicas",
    "w2_sse": "ours SSE, 2 workers",
    "w2_batch": "ours gRPC batch, 2 workers",
    # Two independent sqlite gateways, runs spread round-robin over them: what two processes
    # that share nothing carry here, the ceiling that the two shared-deployment ones stand by.
    "sq2_sse": "ours SSE, 2 sqlite",
    "sq2_batch": "ours gRPC batch, 2 sqlite",
}
# The columns of the main table; the scale-out ones have tables of their own (SCALE).
MAIN = ("inprocess", "raw_grpc", "reference", "sse", "grpc", "grpc_batch", "client", "connect", "connect_h2")
OURS = ("sse", "grpc", "grpc_batch")
RATIOS = (
    *((ours, other) for other in ("reference", "inprocess") for ours in OURS),
    ("client", "grpc_batch"),
    ("connect", "sse"),
    ("connect_h2", "sse"),
    ("grpc", "raw_grpc"),
)
# Per transport: the sqlite default (one process), then one, two replicas and two workers on
# Postgres + Redis, then two independent sqlite gateways.
SCALE = {
    "SSE": ("sse", "pg_sse", "pg2_sse", "w2_sse", "sq2_sse"),
    "gRPC batch": ("grpc_batch", "pg_batch", "pg2_batch", "w2_batch", "sq2_batch"),
}
_DEPLOYMENT = {0: "sqlite", 1: "pg+redis", 2: "2 replicas", 3: "2 workers", 4: "2 sqlite"}
# (numerator, denominator) as indexes into a SCALE row.
_SCALE_PAIRS = ((1, 0), (2, 1), (3, 1), (2, 0), (3, 0), (4, 0))
SCALE_RATIOS = tuple((row[a], row[b]) for row in SCALE.values() for a, b in _SCALE_PAIRS)
_NAMES = {"sse": "SSE", "grpc": "gRPC", "grpc_batch": "gRPC batch"}
# Connections the client of a `--workers` deployment spreads its runs over (bench._clients.Spread).
SPREAD_CONNECTIONS = 32
_SHORT = {
    "sse": "SSE",
    "grpc": "gRPC",
    "grpc_batch": "batch",
    "reference": "ref",
    "inprocess": "floor",
    "client": "client",
    "connect": "Connect",
    "connect_h2": "Connect h2c",
    "raw_grpc": "raw",
}


def _get(result: dict[str, Any] | None, path: tuple[str, ...]) -> Any:
    value: Any = result
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 10:
        return f"{value:.0f}×"
    if value >= 0.1:
        return f"{value:.2f}×"
    return f"{value:.3f}×"


@dataclass(frozen=True)
class Row:
    label: str
    path: tuple[str, ...]
    higher_is_better: bool


def rows(results: dict[str, Any]) -> list[Row]:
    out = [
        Row("small run p50 (ms)", ("small", "latency_ms", "p50"), False),
        Row("small run p99 (ms)", ("small", "latency_ms", "p99"), False),
        Row("first event p50 (ms)", ("small", "first_event_ms", "p50"), False),
        Row("first event p99 (ms)", ("small", "first_event_ms", "p99"), False),
        Row("long stream (events/s)", ("long_stream", "events_per_s"), True),
        Row("long stream after first read (events/s)", ("long_stream", "delivery_events_per_s"), True),
        Row("long stream, server CPU (µs/event)", ("long_stream", "server_cpu_us_per_event"), False),
    ]
    levels = sorted({int(k) for r in results.values() for k in (r.get("concurrency") or {})})
    for level in levels:
        out.append(Row(f"{level} chains (events/s)", ("concurrency", str(level), "events_per_s"), True))
        out.append(Row(f"{level} chains p99 (ms)", ("concurrency", str(level), "latency_ms", "p99"), False))
    sizes = sorted({int(k) for r in results.values() for k in (r.get("payloads") or {})})
    for size in sizes:
        name = f"{size // 1024 // 1024} MB" if size >= 1024 * 1024 else f"{size // 1024} KB"
        out.append(Row(f"values {name} (ms/run)", ("payloads", str(size), "ms_per_run"), False))
    for level in _load_levels(results):
        for variant in ("stateful", "stateless"):
            out.append(
                Row(
                    f"{variant} run p50, {level} streaming (ms)",
                    ("stateful_load", str(level), variant, "latency_ms", "p50"),
                    False,
                )
            )
    out.append(Row("open streams (KB/stream)", ("open_streams", "kb_per_stream"), False))
    return out


def _load_levels(results: dict[str, Any]) -> list[int]:
    return sorted({int(k) for r in results.values() for k in (r.get("stateful_load") or {})})


def table(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for row in rows(results):
        values = {key: _get(results.get(key), row.path) for key in COLUMNS}
        if all(v is None for v in values.values()):
            continue  # a scenario that was not run (see --scenarios)
        ratios = {}
        for ours, other in (*RATIOS, *SCALE_RATIOS):
            a, b = values[ours], values[other]
            ratios[f"{ours}/{other}"] = (
                a / b if isinstance(a, int | float) and isinstance(b, int | float) and b else None
            )
        out.append({"metric": row.label, "higher_is_better": row.higher_is_better, "values": values, "ratios": ratios})
    return out


@dataclass(frozen=True)
class Target:
    label: str
    measure: Callable[[dict[str, Any]], float | None]
    goal: str
    passes: Callable[[float], bool]
    timing: bool = True
    # Left out of the report unless every one of these targets was run (the scale-out ones).
    needs: tuple[str, ...] = ()


def _ratio_of(ours: str, other: str, path: tuple[str, ...]) -> Callable[[dict[str, Any]], float | None]:
    def measure(results: dict[str, Any]) -> float | None:
        a, b = _get(results.get(ours), path), _get(results.get(other), path)
        return a / b if a is not None and b else None

    return measure


def _value_of(key: str, path: tuple[str, ...]) -> Callable[[dict[str, Any]], float | None]:
    def measure(results: dict[str, Any]) -> float | None:
        value: float | None = _get(results.get(key), path)
        return value

    return measure


def _thread_growth(key: str) -> Callable[[dict[str, Any]], float | None]:
    def measure(results: dict[str, Any]) -> float | None:
        s = _get(results.get(key), ("open_streams",))
        return None if not s else s["threads_open"] - s["threads_before"]

    return measure


_SMALL = ("small", "latency_ms", "p50")
_FIRST = ("small", "first_event_ms", "p50")
_LONG = ("long_stream", "events_per_s")
_C32 = ("concurrency", "32", "events_per_s")
_LONG_CPU = ("long_stream", "server_cpu_us_per_event")


def _targets() -> tuple[Target, ...]:
    out = [
        Target("SSE small-run p50 vs reference", _ratio_of("sse", "reference", _SMALL), "≤ 0.05×", lambda v: v <= 0.05),
        Target(
            "SSE first-event p50 vs reference", _ratio_of("sse", "reference", _FIRST), "≤ 0.05×", lambda v: v <= 0.05
        ),
        Target("SSE long stream vs reference", _ratio_of("sse", "reference", _LONG), "≥ 10×", lambda v: v >= 10),
        Target("SSE long stream vs in-process", _ratio_of("sse", "inprocess", _LONG), "≥ 0.15×", lambda v: v >= 0.15),
    ]
    for key in ("grpc", "grpc_batch"):
        out.append(
            Target(
                f"{_NAMES[key]} long stream vs in-process",
                _ratio_of(key, "inprocess", _LONG),
                "≥ 0.25×",
                lambda v: v >= 0.25,
            )
        )
    for key in OURS:
        name = _NAMES[key]
        out.append(
            Target(f"{name} 32 chains vs reference", _ratio_of(key, "reference", _C32), "≥ 2×", lambda v: v >= 2)
        )
        out.append(
            Target(f"{name} 32 chains vs in-process", _ratio_of(key, "inprocess", _C32), "≥ 0.6×", lambda v: v >= 0.6)
        )
    # The clients: the Python client costs little over the raw batch RPC; Connect on the HTTP
    # port carries a browser's stream at half SSE's rate or better.
    out.append(
        Target(
            "Python client long stream ÷ gRPC batch",
            _ratio_of("client", "grpc_batch", _LONG),
            "≥ 0.9×",
            lambda v: v >= 0.9,
        )
    )
    out.append(Target("Connect long stream ÷ SSE", _ratio_of("connect", "sse", _LONG), "≥ 0.5×", lambda v: v >= 0.5))
    out.append(
        Target(
            "Connect over HTTP/2 (h2c) long stream ÷ SSE",
            _ratio_of("connect_h2", "sse", _LONG),
            "≥ 0.5×",
            lambda v: v >= 0.5,
        )
    )
    # RunStream, one message per event, at grpcio's own cost per message.
    out.append(
        Target(
            "gRPC RunStream server CPU per event ÷ raw grpc.aio per message",
            _ratio_of("grpc", "raw_grpc", _LONG_CPU),
            "≤ 1.3×",
            lambda v: v <= 1.3,
        )
    )
    out.append(
        Target(
            "gRPC RunStream events/s ÷ raw grpc.aio messages/s",
            _ratio_of("grpc", "raw_grpc", _LONG),
            "≥ 0.75×",
            lambda v: v >= 0.75,
        )
    )
    for key in OURS:
        name = _NAMES[key]
        # A few threads may start lazily (executors, sqlite); one per stream would be hundreds.
        out.append(Target(f"{name} open streams: thread growth", _thread_growth(key), "≤ 8", lambda v: v <= 8, False))
    return tuple(out)


def _scale_targets() -> tuple[Target, ...]:
    """Issue 10: two processes carry ≥ 1.3× one's events/s on 32 concurrent chains (against one
    replica on the same backends, and against the sqlite default); one replica on Postgres +
    Redis keeps ≥ 0.7× the sqlite default's events/s, and small runs within 2× its latency."""
    out = []
    for transport, (sqlite, pg, pg2, w2, _) in SCALE.items():
        for two, name in ((pg2, "2 replicas"), (w2, "2 workers")):
            for one, base in ((pg, "1 replica (pg+redis)"), (sqlite, "sqlite")):
                out.append(
                    Target(
                        f"{transport} {name} ÷ {base}, 32 chains",
                        _ratio_of(two, one, _C32),
                        "≥ 1.3×",
                        lambda v: v >= 1.3,
                        needs=(two, one),
                    )
                )
        for path, what in ((_C32, "32 chains"), (_LONG, "long stream")):
            out.append(
                Target(
                    f"{transport} pg+redis ÷ sqlite, {what}",
                    _ratio_of(pg, sqlite, path),
                    "≥ 0.7×",
                    lambda v: v >= 0.7,
                    needs=(pg, sqlite),
                )
            )
        out.append(
            Target(
                f"{transport} pg+redis ÷ sqlite, small-run p50",
                _ratio_of(pg, sqlite, _SMALL),
                "≤ 2×",
                lambda v: v <= 2,
                needs=(pg, sqlite),
            )
        )
    return tuple(out)


TARGETS = (*_targets(), *_scale_targets())

# A run on a thread, while other clients stream, within this many times a stateless one.
STATEFUL_GOAL = 2.0


def _stateful_targets(results: dict[str, Any]) -> list[Target]:
    """Per transport and per level with a background load: stateful p50 ÷ stateless p50."""
    out = []
    for level in _load_levels(results):
        if not level:
            continue  # the goal is about runs under load
        for key in OURS:
            out.append(
                Target(
                    f"{_NAMES[key]} stateful ÷ stateless p50, {level} streaming",
                    _value_of(key, ("stateful_load", str(level), "stateful_over_stateless")),
                    f"≤ {STATEFUL_GOAL:.0f}×",
                    lambda v: v <= STATEFUL_GOAL,
                )
            )
    return out


def targets(results: dict[str, Any], *, smoke: bool) -> list[dict[str, Any]]:
    out = []
    for t in (*TARGETS, *_stateful_targets(results)):
        if not all(key in results for key in t.needs):
            continue
        value = t.measure(results)
        if value is None:
            verdict = "n/a"
        elif smoke and t.timing:
            verdict = "(smoke)"
        else:
            verdict = "PASS" if t.passes(value) else "FAIL"
        out.append({"target": t.label, "measured": value, "goal": t.goal, "result": verdict, "timing": t.timing})
    return out


def markdown(report: dict[str, Any]) -> str:
    results = report["results"]
    present = [k for k in MAIN if k in results]
    ratio_keys = [(a, b) for a, b in RATIOS if a in results and b in results]
    head = ["metric", *(COLUMNS[k] for k in present)]
    head += [f"{_SHORT[a]} ÷ {_SHORT[b]}" for a, b in ratio_keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for row in report["table"]:
        if all(row["values"][k] is None for k in present):
            continue
        cells = [row["metric"], *(_num(row["values"][k]) for k in present)]
        cells += [_ratio(row["ratios"][f"{a}/{b}"]) for a, b in ratio_keys]
        lines.append("| " + " | ".join(cells) + " |")
    if len(head) == 1:
        lines = []  # only scale-out targets were run: their own tables follow
    lines += _scale_tables(report)
    lines += [
        "",
        "| target (issue 5; stateful under load; issue 10 scale-out) | measured | goal | result |",
        "|---|---:|---|---|",
    ]
    for t in report["targets"]:
        measured = _ratio(t["measured"]) if t["timing"] else _num(t["measured"])
        lines.append(f"| {t['target']} | {measured} | {t['goal']} | {t['result']} |")
    lines += _failover_table(report)
    lines += _stateful_table(results, [k for k in COLUMNS if k in results])
    streams = [(k, results[k]["open_streams"]) for k in COLUMNS if k in results and results[k].get("open_streams")]
    if streams:
        lines += [
            "",
            "| open streams | streams | RSS before → open → after (MB) | KB/stream | threads before → open → after |",
        ]
        lines.append("|---|---:|---|---:|---|")
        for key, s in streams:
            rss = f"{s['rss_before_mb']:.0f} → {s['rss_open_mb']:.0f} → {s['rss_after_mb']:.0f}"
            threads = f"{s['threads_before']} → {s['threads_open']} → {s['threads_after']}"
            lines.append(
                f"| {COLUMNS[key]} | {s['opened']}/{s['streams']} | {rss} | {_num(s['kb_per_stream'])} | {threads} |"
            )
    return "\n".join(lines)


def _scale_tables(report: dict[str, Any]) -> list[str]:
    """Per transport: the sqlite default and the scale-out deployments, with their ratios."""
    results, lines = report["results"], []
    for transport, row in SCALE.items():
        present = [i for i, key in enumerate(row) if key in results]
        if not any(i > 0 for i in present):
            continue
        pairs = [(a, b) for a, b in _SCALE_PAIRS if a in present and b in present]
        head = [f"scale-out, {transport}", *(_DEPLOYMENT[i] for i in present)]
        head += [f"{_DEPLOYMENT[a]} ÷ {_DEPLOYMENT[b]}" for a, b in pairs]
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
        for table_row in report["table"]:
            values = [table_row["values"][row[i]] for i in present]
            if all(v is None for v in values):
                continue
            cells = [table_row["metric"], *(_num(v) for v in values)]
            cells += [_ratio(table_row["ratios"][f"{row[a]}/{row[b]}"]) for a, b in pairs]
            lines.append("| " + " | ".join(cells) + " |")
    if lines:
        lines += [
            "",
            "pg+redis: one gateway process on Postgres + Redis; 2 replicas: two processes of one deployment "
            "(one database, one key prefix) on ports of their own, runs spread round-robin over them; "
            "2 workers: `--workers 2`, two processes on one port, the client's runs spread round-robin over "
            f"{SPREAD_CONNECTIONS} connections that the kernel hands to one worker or the other; 2 sqlite: two "
            "independent sqlite gateways, runs spread round-robin over them, what two processes that share "
            "nothing carry on this machine. Server CPU counts the gateway's processes, not Postgres' or Redis'.",
        ]
    return lines


def _failover_table(report: dict[str, Any]) -> list[str]:
    failover = report.get("failover") or {}
    if not failover:
        return []
    lines = [
        "",
        "| scale-out timing (issue 10) | trials | median (ms) | max (ms) | goal | result |",
        "|---|---:|---:|---:|---|---|",
    ]
    labels = {
        "takeover": "takeover of a killed replica's run: kill → attempt 2's metadata through the other",
        "cancel": "cancel across replicas: request through B → the end of A's run through B",
    }
    for name, label in labels.items():
        t = failover.get(name)
        if t is None:
            continue
        median_s, max_s = t["median_s"], t["max_s"]
        goal = f"≤ {t['goal_s'] * 1000:,.0f} ms"
        if name == "takeover":
            goal += f" (2 × --lease-seconds {t['lease_s']:g})"
        lines.append(
            f"| {label} | {t['trials']} | {_num(None if median_s is None else median_s * 1000)} "
            f"| {_num(None if max_s is None else max_s * 1000)} | {goal} | {t['result']} |"
        )
    return lines


def failover_verdicts(failover: dict[str, Any], *, smoke: bool) -> None:
    """Marks each timing PASS when its slowest trial met the goal (and no trial failed)."""
    for t in failover.values():
        if not t["trials"]:
            t["result"] = "n/a"
        elif smoke:
            t["result"] = "(smoke)"
        else:
            t["result"] = "PASS" if t["max_s"] <= t["goal_s"] and not t["errors"]["count"] else "FAIL"


def _stateful_table(results: dict[str, Any], present: list[str]) -> list[str]:
    measured = [k for k in present if results[k].get("stateful_load")]
    if not measured:
        return []
    lines = [
        "",
        "| stateful under load | streaming | stateful p50 / p99 (ms) | stateless p50 / p99 (ms) "
        "| stateful ÷ stateless p50 | load (events/s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key in measured:
        for level, r in sorted(results[key]["stateful_load"].items(), key=lambda item: int(item[0])):
            spreads = [r[variant]["latency_ms"] for variant in ("stateful", "stateless")]
            cells = [f"{_num(s['p50'])} / {_num(s['p99'])}" for s in spreads]
            rate = _num(r["load_events_per_s"]) if r["streams"] else "–"
            lines.append(
                f"| {COLUMNS[key]} | {level} | {cells[0]} | {cells[1]} | {_ratio(r['stateful_over_stateless'])} | {rate} |"
            )
    skipped = [COLUMNS[k] for k in present if k not in measured]
    note = (
        "Each level: that many clients stream token runs back to back while one more does small runs, "
        "alternating a new run on one thread with a stateless one; p99 is of few runs, nearly their maximum."
    )
    if "reference" in skipped:
        note += " The reference is not measured here: at about a second a run, it would take minutes."
    return [*lines, "", note]
