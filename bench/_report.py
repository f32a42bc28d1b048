"""The results as one table of medians with the ratios between the servers and against the
in-process floor, the targets of issue 5 (and the stateful-under-load goal) marked PASS or FAIL,
as markdown and as JSON."""

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
}
OURS = ("sse", "grpc", "grpc_batch")
RATIOS = tuple((ours, other) for other in ("reference", "inprocess") for ours in OURS)
_NAMES = {"sse": "SSE", "grpc": "gRPC", "grpc_batch": "gRPC batch"}
_SHORT = {"sse": "SSE", "grpc": "gRPC", "grpc_batch": "batch", "reference": "ref", "inprocess": "floor"}


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
        for ours, other in RATIOS:
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
    for key in OURS:
        name = _NAMES[key]
        # A few threads may start lazily (executors, sqlite); one per stream would be hundreds.
        out.append(Target(f"{name} open streams: thread growth", _thread_growth(key), "≤ 8", lambda v: v <= 8, False))
    return tuple(out)


TARGETS = _targets()

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
    present = [k for k in COLUMNS if k in results]
    ratio_keys = [(a, b) for a, b in RATIOS if a in results and b in results]
    head = ["metric", *(COLUMNS[k] for k in present)]
    head += [f"{_SHORT[a]} ÷ {_SHORT[b]}" for a, b in ratio_keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for row in report["table"]:
        cells = [row["metric"], *(_num(row["values"][k]) for k in present)]
        cells += [_ratio(row["ratios"][f"{a}/{b}"]) for a, b in ratio_keys]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| target (issue 5; stateful under load) | measured | goal | result |", "|---|---:|---|---|"]
    for t in report["targets"]:
        measured = _ratio(t["measured"]) if t["timing"] else _num(t["measured"])
        lines.append(f"| {t['target']} | {measured} | {t['goal']} | {t['result']} |")
    lines += _stateful_table(results, present)
    streams = [(k, results[k]["open_streams"]) for k in present if results[k].get("open_streams")]
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
