"""`python -m bench`: the full benchmark; `--smoke`: every scenario once, for CI (no timing
asserted, only that each run completed without errors and with the events it should have);
`--scenarios`: a subset of them (`--scenarios stateful_load`: only stateful runs under load);
`--profile`: py-spy on the gateway during the small-run, long-stream and 32-chain scenarios.
The scale-out targets (pg_*, pg2_*, w2_*) and the takeover and cancel timings run on Postgres +
Redis (bench/_backends.py: a database and key prefix of their own, removed afterwards); sq2_*,
two independent sqlite gateways, measure what two processes sharing nothing carry here;
`python -m bench load`: hundreds of streams at once on one gateway (see `load --help`);
`python -m bench tokens`: a token stream over the thread protocol beside runs.stream.
BENCH_GATEWAY_ARGS adds options to every gateway started (BENCH_GATEWAY_ARGS="--stream-linger-ms 0")."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import httpx
import langgraph.version
from langgraph.gateway.v1 import runs_pb2

from bench import _backends, _failover, _load, _profile
from bench._clients import Client, Connect, Grpc, InProcess, PyClient, Spread, Sse
from bench._raw import RawClient, RawServer
from bench._report import COLUMNS, SPREAD_CONNECTIONS, failover_verdicts, markdown, table, targets
from bench._scenarios import FULL, LONG_STREAM_ONLY, SCENARIOS, SMOKE, Errors, Plan, measure, measure_open_streams
from bench._servers import (
    BENCH,
    REF_VENV,
    GatewayServer,
    ReferenceServer,
    Replicas,
    ServerProcess,
    busy_cpu_seconds,
    ensure_reference_venv,
    raise_fd_limit,
    revision,
    scratch_copy,
)
from bench.graphs import CHAIN_LENGTH

RESULTS = BENCH / "results"
# The scale-out targets: (deployment, transport). Deployments: "pg", one process on Postgres +
# Redis; "pg2", two replicas of one deployment on ports of their own; "w2", `--workers 2`;
# "sq2", two independent sqlite gateways (no deployment shared: the ceiling of two processes).
SCALE_TARGETS = {
    "pg_sse": ("pg", "sse"),
    "pg_batch": ("pg", "batch"),
    "pg2_sse": ("pg2", "sse"),
    "pg2_batch": ("pg2", "batch"),
    "w2_sse": ("w2", "sse"),
    "w2_batch": ("w2", "batch"),
    "sq2_sse": ("sq2", "sse"),
    "sq2_batch": ("sq2", "batch"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="every scenario once, quickly; numbers mean nothing")
    parser.add_argument(
        "--targets",
        default=",".join(COLUMNS),
        help="comma-separated subset of: " + ", ".join(COLUMNS) + " (default: all)",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated subset of: " + ", ".join(SCENARIOS) + " (default: all)",
    )
    parser.add_argument("--open-streams", type=int, help="streams held open for the memory scenario")
    parser.add_argument(
        "--ref-jobs", type=int, default=64, help="the reference's --n-jobs-per-worker (default: %(default)s)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="JSON results (default: bench/results/latest.json; latest-<scenarios>.json for some)",
    )
    parser.add_argument("--profile", action="store_true", help="profile the gateway with py-spy instead")
    parser.add_argument("--native", action="store_true", help="with --profile: include C and Cython frames")
    return parser


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _start_gateway(config: Path, notes: list[str]) -> GatewayServer:
    try:
        return GatewayServer(config).start()
    except RuntimeError as exc:
        notes.append(f"ours SSE: the gateway did not start with HTTP ({str(exc).splitlines()[-1]}); gRPC only")
        return GatewayServer(config, http=False).start()


def _serves_http(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ok", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


class _Servers:
    """Starts the servers the targets need, once each, and stops them with `stack`."""

    def __init__(
        self,
        config: Path,
        args: argparse.Namespace,
        plan: Plan,
        stack: contextlib.ExitStack,
        *,
        scale_args: Sequence[str] = (),
    ) -> None:
        self.config, self.args, self.plan, self.stack = config, args, plan, stack
        # More arguments for the scale-out deployments.
        self.scale_args = tuple(scale_args)
        self.notes: list[str] = []
        self._gateway: GatewayServer | None = None
        self._reference: ReferenceServer | None = None
        self._deployments: dict[str, ServerProcess] = {}
        self._unreachable: str | None = None

    def gateway(self) -> GatewayServer:
        if self._gateway is None:
            _log("starting the gateway")
            self._gateway = _start_gateway(self.config, self.notes)
            self.stack.callback(self._gateway.stop)
        return self._gateway

    def reference(self) -> ReferenceServer | None:
        if self._reference is None:
            # Smoke runs use the reference only when its venv exists: creating it takes minutes.
            exe = ensure_reference_venv(create=not self.plan.smoke)
            if exe is None:
                self.notes.append(f"reference: skipped, {REF_VENV} does not exist (python -m bench creates it)")
                return None
            _log("starting the reference server")
            self._reference = ReferenceServer(exe, self.config, jobs=self.args.ref_jobs).start()
            self.stack.callback(self._reference.stop)
        return self._reference

    def scale_out_backends(self) -> tuple[str, ...] | None:
        """The arguments of a new deployment on Postgres + Redis (a database and key prefix of
        its own, removed with `stack`), or None when they cannot be reached."""
        if self._unreachable is None:
            self._unreachable = _backends.unreachable() or ""
            if self._unreachable:
                self.notes.append(f"scale-out targets and timings: skipped, {self._unreachable}")
        if self._unreachable:
            return None
        return self.stack.enter_context(_backends.shared_backends())

    def deployment(self, kind: str) -> ServerProcess | None:
        if kind in self._deployments:
            return self._deployments[kind]
        if kind == "sq2":
            _log("starting two independent sqlite gateways")
            each = [("--db", str(self.config.parent / f"independent-{i}.sqlite")) for i in (1, 2)]
        else:
            backends = self.scale_out_backends()
            if backends is None:
                return None
            _log({"pg": "starting a gateway on Postgres + Redis", "pg2": "starting two replicas on Postgres + Redis",
                  "w2": "starting a gateway with --workers 2 on Postgres + Redis"}[kind])  # fmt: skip
            workers = ("--workers", "2") if kind == "w2" else ()
            each = [(*backends, *self.scale_args, *workers)] * (2 if kind == "pg2" else 1)
        servers: list[GatewayServer] = []
        for args in each:
            servers.append(GatewayServer(self.config, args=args).start())
            self.stack.callback(servers[-1].stop)
        deployment: ServerProcess = Replicas(servers) if len(servers) > 1 else servers[0]
        self._deployments[kind] = deployment
        return deployment

    def _scale_target(self, key: str) -> tuple[Callable[[], Client], ServerProcess | None] | None:
        kind, transport = SCALE_TARGETS[key]
        deployment = self.deployment(kind)
        if deployment is None:
            return None
        label = COLUMNS[key]
        servers = deployment.servers if isinstance(deployment, Replicas) else [deployment]
        # Two replicas (or independent gateways): a client for each, runs alternating between them. Two workers on one
        # port: a client (a connection) for each of SPREAD_CONNECTIONS, so that they spread.
        if kind == "w2":
            servers = servers * SPREAD_CONNECTIONS
        makers: list[Callable[[], Client]] = []
        for server in servers:
            assert isinstance(server, GatewayServer)
            if transport == "sse":
                makers.append(functools.partial(Sse, label, f"http://127.0.0.1:{server.http_port}"))
            else:
                grpc_target = f"127.0.0.1:{server.grpc_port}"
                own = kind == "w2"
                makers.append(functools.partial(Grpc, grpc_target, batched=True, own_connection=own, name=label))
        if len(makers) == 1:
            return makers[0], deployment
        return functools.partial(Spread, label, tuple(makers), own_threads=kind == "sq2"), deployment

    def target(self, key: str) -> tuple[Callable[[], Client], ServerProcess | None] | None:
        if key in SCALE_TARGETS:
            return self._scale_target(key)
        if key == "inprocess":
            return InProcess, None
        if key == "raw_grpc":
            raw = RawServer().start()
            self.stack.callback(raw.stop)
            return functools.partial(RawClient, f"127.0.0.1:{raw.port}"), raw
        if key == "reference":
            reference = self.reference()
            if reference is None:
                return None
            ref_url = f"http://127.0.0.1:{reference.port}"
            return functools.partial(Sse, "reference, SSE", ref_url), reference
        # Partials of the client classes, not lambdas: a worker process of the background load
        # (stateful runs under load) makes its clients with them, and they must pickle.
        gateway = self.gateway()
        grpc_target = f"127.0.0.1:{gateway.grpc_port}"
        if key == "grpc":
            return functools.partial(Grpc, grpc_target), gateway
        if key == "grpc_batch":
            if "RunStreamBatch" not in runs_pb2.DESCRIPTOR.services_by_name["RunsService"].methods_by_name:
                self.notes.append("ours gRPC batch: skipped, RunsService has no RunStreamBatch")
                return None
            return functools.partial(Grpc, grpc_target, batched=True), gateway
        if key == "client":
            return functools.partial(PyClient, grpc_target), gateway
        url = f"http://127.0.0.1:{gateway.http_port}"
        if key == "connect" and gateway.http_port > 0:
            return functools.partial(Connect, url), gateway
        if key == "connect_h2" and gateway.http_port > 0:
            return functools.partial(Connect, url, name=COLUMNS[key], http2=True), gateway
        if gateway.http_port > 0 and _serves_http(url):
            return functools.partial(Sse, "ours, SSE", url), gateway
        self.notes.append("ours SSE: skipped, the gateway serves no HTTP API (gateway/http)")
        return None


def _failover_timings(
    plan: Plan, scenarios: Sequence[str], config: Path, args: argparse.Namespace, notes: list[str]
) -> dict[str, Any]:
    """The takeover and cancel timings, on two replicas of a deployment of their own."""
    wanted = [s for s in ("cancel", "takeover") if s in scenarios]
    if not wanted:
        return {}
    reason = _backends.unreachable()
    if reason is not None:
        notes.append(f"{' and '.join(wanted)}: skipped, {reason}")
        return {}
    with _backends.shared_backends() as backends:
        return _failover.measure(
            config,
            backends,
            lease_seconds=plan.lease_seconds,
            takeover_trials=plan.takeover_trials,
            cancel_trials=plan.cancel_trials,
            scenarios=wanted,
            log=_log,
        )


def run(
    plan: Plan, keys: Sequence[str], scenarios: Sequence[str], config: Path, args: argparse.Namespace
) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """Measures every target interleaved (see bench._scenarios), then the scale-out timings on
    replicas of their own, then the open streams of each server on a fresh process of its own
    (smoke runs reuse the servers: quick, not precise)."""
    with contextlib.ExitStack() as stack:
        servers = _Servers(config, args, plan, stack)
        targets = {key: t for key in keys if (t := servers.target(key)) is not None}
        notes = servers.notes
        running = {server for _, server in targets.values() if server is not None}

        def own_cpu() -> float:
            # Children that have ended count too: the background load's worker process.
            children = os.times().children_user + os.times().children_system
            return time.process_time() + children + sum(s.stats()["cpu"] for s in running)

        start, busy, own = time.perf_counter(), busy_cpu_seconds(), own_cpu()
        results = asyncio.run(
            measure(
                {k: make for k, (make, _) in targets.items()},
                {k: server for k, (_, server) in targets.items()},
                plan,
                log=_log,
                scenarios=scenarios,
            )
        )
        elapsed = time.perf_counter() - start
        other = max(busy_cpu_seconds() - busy - (own_cpu() - own), 0.0)
        if not plan.smoke:
            stack.close()
        failover = _failover_timings(plan, scenarios, config, args, notes)
        for key in targets:
            if key in ("inprocess", *LONG_STREAM_ONLY) or "open_streams" not in scenarios:
                continue
            with contextlib.ExitStack() as fresh_stack:
                # Each process of a scale-out deployment runs at most --max-concurrent-runs (256)
                # at once and queues the rest: enough for every stream, so that all are live.
                scale_args = ("--max-concurrent-runs", str(plan.open_streams + 64))
                fresh = _Servers(config, args, plan, fresh_stack, scale_args=scale_args)
                source = servers if plan.smoke else fresh
                make, server = source.target(key) or targets[key]
                assert server is not None
                _log(f"{plan.open_streams} open streams: {COLUMNS[key]}")
                streams, errors = asyncio.run(measure_open_streams(key, make, server, plan))
            results[key]["open_streams"] = streams
            results[key]["errors"]["count"] += errors.count
            results[key]["errors"]["samples"] += errors.samples
    if "open_streams" in scenarios and not plan.smoke and any(key in SCALE_TARGETS for key in targets):
        notes.append(
            f"open streams on Postgres + Redis: --max-concurrent-runs {plan.open_streams + 64} (default 256 "
            "per process, the rest queued), so that every stream's run is live"
        )
    share = 100 * other / (elapsed * (os.cpu_count() or 1))
    if share > 10:
        notes.append(f"other processes used {share:.0f}% of the machine's CPU during the interleaved scenarios")
    return {"measured": {"elapsed_s": elapsed, "other_cpu_percent": share}, **results}, notes, failover


def _dist_version(venv: Path, dist: str) -> str | None:
    for info in venv.glob(f"lib/python*/site-packages/{dist}-*.dist-info"):
        return info.name[len(dist) + 1 : -len(".dist-info")]
    return None


def _meta(plan: Plan, args: argparse.Namespace) -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "smoke" if plan.smoke else "full",
        "revision": revision(),
        "machine": f"{os.cpu_count()} cores, {cpu}",
        "python": platform.python_version(),
        "langgraph": langgraph.version.__version__,
        "grpcio": grpc.__version__,
        "langgraph_api": _dist_version(REF_VENV, "langgraph_api"),
        "reference_jobs_per_worker": args.ref_jobs,
        **_backends.versions(),
        "plan": dataclasses.asdict(plan),
    }


def _preamble(report: dict[str, Any]) -> str:
    meta, plan = report["meta"], report["meta"]["plan"]
    lines = [
        f"Benchmark ({meta['mode']}) of {meta['revision']} on {meta['machine']}; Python {meta['python']}, "
        f"langgraph {meta['langgraph']}, grpcio {meta['grpcio']}, reference langgraph-api {meta['langgraph_api']} "
        f"(`langgraph dev`, in-memory runtime, {meta['reference_jobs_per_worker']} jobs per worker).",
        f"Medians, targets interleaved run by run. Small runs: two-node graph, `updates`, {plan['small_runs']} "
        f"runs each. Long stream: {plan['burst_events']} custom events, from the request to the last event "
        '("after first read" starts at the first arrival and counts only the events that came later). '
        f"Chains: N streams of a {CHAIN_LENGTH}-node chain at once, `updates`. Values: a state of that size, "
        f"`values` mode. Open streams: {plan['open_streams']} streams of an idle run on a fresh server, RSS growth "
        f"per stream (the reference runs {meta['reference_jobs_per_worker']} at once and queues the rest). "
        f"Stateful under load: while N clients stream {plan['burst_events']}-event custom runs back to back "
        "(a worker process's for a server, the same loop's for the floor), one more client does two-node "
        "runs one at a time, alternating a new run on one thread (made beforehand; the floor: an "
        f"InMemorySaver) with a stateless run, {plan['stateful_rounds'] * plan['stateful_pairs']} of each "
        "per level; from the request to the last event. "
        "Ratios: ours ÷ reference and ours ÷ in-process floor.",
    ]
    if any(key in report["results"] for key in SCALE_TARGETS) or report.get("failover"):
        lines.append(
            f"Scale-out: the same scenarios on Postgres {meta.get('postgres')} + Redis {meta.get('redis')} "
            "(on this machine, sharing its cores), each deployment on a database and key prefix of its own; "
            "ratios against one process on the same backends and against the sqlite default. Takeover and "
            f"cancel: two replicas of their own with --lease-seconds {plan['lease_seconds']:g}, "
            f"{plan['takeover_trials']} and {plan['cancel_trials']} trials."
        )
    if meta.get("scenarios") and list(meta["scenarios"]) != list(SCENARIOS):
        lines.append(f"Only these scenarios: {', '.join(meta['scenarios'])}.")
    if meta["mode"] == "smoke":
        lines.append("**Smoke run: a check that every scenario completes; the numbers are not measurements.**")
    for note in report["notes"]:
        lines.append(f"Note: {note}")
    return "\n".join(lines)


def profile(config: Path, keys: Sequence[str], *, native: bool) -> int:
    """py-spy on the gateway during small runs, the long stream and 32 concurrent chains, per transport."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    gateway = _start_gateway(config, [])
    summaries: dict[str, Any] = {}
    errors = Errors()

    async def scenarios(key: str, make_client: Callable[[], Client]) -> None:
        client = make_client()  # grpc.aio channels belong to the loop they are made in

        async def bursts() -> None:
            for _ in range(30):
                errors.check(f"{key} long stream", await client.run("burst", {"count": 1000}, "custom"), 1000)

        async def small() -> None:
            for _ in range(150):
                errors.check(f"{key} small runs", await client.run("two_node", {"n": 0}, "updates"), 2)

        async def chains() -> None:
            for _ in range(6):
                for t in await asyncio.gather(*(client.run("chain", {"n": 0}, "updates") for _ in range(32))):
                    errors.check(f"{key} 32 chains", t, CHAIN_LENGTH)

        try:
            for _ in range(5):
                errors.check(f"{key} warm-up", await client.run("two_node", {"n": 0}, "updates"), 2)
            for name, work in (("small-runs", small), ("long-stream", bursts), ("32-chains", chains)):
                out = RESULTS / f"profile-{key}-{name}.txt"
                _log(f"profiling {key} {name} into {out}")
                await _profile.record(gateway.pid, out, work, native=native)
                summaries[f"{key} {name}"] = _profile.summarise(out)
        finally:
            await client.aclose()

    try:
        if "grpc" in keys:
            asyncio.run(scenarios("grpc", lambda: Grpc(f"127.0.0.1:{gateway.grpc_port}")))
        if "grpc_batch" in keys:
            asyncio.run(scenarios("grpc_batch", lambda: Grpc(f"127.0.0.1:{gateway.grpc_port}", batched=True)))
        url = f"http://127.0.0.1:{gateway.http_port}"
        if "sse" in keys and gateway.http_port > 0 and _serves_http(url):
            asyncio.run(scenarios("sse", lambda: Sse("ours, SSE", url)))
    finally:
        gateway.stop()
    for title, summary in summaries.items():
        print(_profile.format_summary(title, summary) + "\n")
    (RESULTS / "profile.json").write_text(json.dumps(summaries, indent=2, ensure_ascii=False))
    if errors.count:
        _log(f"{errors.count} runs failed while profiling, e.g. " + "; ".join(errors.samples[:3]))
    return 1 if errors.count else 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # As Ctrl-C does: the servers are stopped and the scale-out databases and keys removed on
    # the way out (the servers run in sessions of their own, so no signal reaches them).
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if argv[:1] == ["load"]:
        raise_fd_limit()
        return _load.main(argv[1:])
    if argv[:1] == ["tokens"]:
        from bench import _tokens

        return _tokens.main(argv[1:])
    args = _parser().parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    if args.open_streams:
        plan = dataclasses.replace(plan, open_streams=args.open_streams)
    keys = [k.strip() for k in args.targets.split(",") if k.strip()]
    unknown = set(keys) - set(COLUMNS)
    if unknown:
        sys.exit(f"error: unknown targets: {', '.join(sorted(unknown))}")
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        sys.exit(f"error: unknown scenarios: {', '.join(sorted(unknown))}")
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        config = scratch_copy(Path(scratch))
        if args.profile:
            return profile(config, keys, native=args.native)
        started = time.perf_counter()
        results, notes, failover = run(plan, keys, scenarios, config, args)
    measured = results.pop("measured")
    failover_verdicts(failover, smoke=plan.smoke)
    report: dict[str, Any] = {
        "meta": {**_meta(plan, args), "scenarios": scenarios, **measured, "wall_s": time.perf_counter() - started},
        "notes": notes,
        "results": results,
        "table": table(results),
        "targets": targets(results, smoke=plan.smoke),
        "failover": failover,
    }
    if scenarios != list(SCENARIOS):
        # Those of the scenarios left out would only say n/a.
        report["targets"] = [t for t in report["targets"] if t["measured"] is not None]
    text = _preamble(report) + "\n\n" + markdown(report)
    print(text)
    name = "smoke" if plan.smoke else "latest"
    if scenarios != list(SCENARIOS):
        # A subset leaves the last whole run's results alone.
        name += "-" + "+".join(scenarios)
    output = args.output or RESULTS / f"{name}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    output.with_suffix(".md").write_text(text + "\n")
    _log(f"wrote {output} and {output.with_suffix('.md').name}")
    failed: dict[str, dict[str, Any]] = {COLUMNS[k]: r["errors"] for k, r in results.items() if r["errors"]["count"]}
    failed |= {timing: t["errors"] for timing, t in failover.items() if t["errors"]["count"]}
    for what, errs in failed.items():
        _log(f"{what}: {errs['count']} errors, e.g. " + "; ".join(errs["samples"][:3]))
    _log(f"took {report['meta']['wall_s'] / 60:.1f} minutes")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
