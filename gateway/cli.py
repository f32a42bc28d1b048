"""Command line: `python -m gateway serve` runs the gateway; `python -m gateway bridge` runs the
HTTP/SSE bridge alone in front of a remote gateway."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from gateway.shared.settings import BridgeSettings, Settings

if TYPE_CHECKING:
    from gateway.config.file import Config

logger = logging.getLogger("gateway")
T = TypeVar("T")


# uvloop: the load test costs markedly less CPU per event on it than on asyncio's (docs/performance.md).
_LOOPS = ("auto", "uvloop", "asyncio")
_LOOP_HELP = "event loop: uvloop where installed, else asyncio's (default: %(default)s)"
_LOG_FORMAT_HELP = "text lines, or one JSON object per line with run and thread ids (default: %(default)s)"
_MAX_BODY_HELP = "largest HTTP request body; larger ones get 413 (default: 300 MiB, as the Agent Server)"
_OTEL_HELP = "send OpenTelemetry traces (needs the otel extra; OTEL_* variables configure the exporter)"
_HEADER_KB_HELP = "largest HTTP request line and headers, in KiB; larger ones get 431 (default: %(default)s)"
_HEADER_TIMEOUT_HELP = (
    "seconds an HTTP connection has to send a request's headers, from when it opens (or from a later "
    "request's first byte); then it is closed (default: %(default)s)"
)


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def _grpc_connection_flags(group: argparse._ArgumentGroup, d: Settings) -> None:
    group.add_argument(
        "--grpc-max-message-mb",
        type=_positive,
        default=d.grpc_max_message_mb,
        help="largest gRPC message, received or sent, in MiB; clients set grpc.max_receive_message_length "
        "(and grpc.max_send_message_length) to match (default: %(default)s)",
    )
    group.add_argument(
        "--grpc-compression",
        choices=("none", "gzip", "deflate"),
        default=d.grpc_compression,
        help="compress gRPC responses for clients that accept it; compressed requests are read "
        "either way (default: %(default)s)",
    )
    group.add_argument(
        "--grpc-max-connection-age",
        type=_seconds,
        default=None,
        help="seconds after which a client is asked (GOAWAY) to reconnect for new calls, so that a load "
        "balancer spreads clients over new replicas (default: no limit)",
    )
    group.add_argument(
        "--grpc-max-connection-age-grace",
        type=_seconds,
        default=None,
        help="seconds the live streams of such a connection then get before it is closed "
        "(default: --run-timeout, or no limit without it)",
    )
    group.add_argument(
        "--grpc-max-connection-idle",
        type=_seconds,
        default=None,
        help="seconds a connection without calls is kept before it is closed (default: no limit)",
    )
    group.add_argument(
        "--grpc-min-ping-interval",
        type=_seconds,
        default=d.grpc_min_ping_interval,
        help="the shortest time in seconds between a client's keepalive pings that is accepted, with calls or "
        'without; a client that pings sooner gets GOAWAY "too_many_pings" (default: %(default)s, for clients '
        "that ping every 10 s)",
    )


def _parser() -> argparse.ArgumentParser:
    d, b = Settings(), BridgeSettings()
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the graphs of a langgraph.json over gRPC and HTTP/SSE")
    serve.add_argument("--config", default=d.config, help="the langgraph.json to serve (default: %(default)s)")
    serve.add_argument("--host", default=d.host, help="address to listen on (default: %(default)s)")
    serve.add_argument(
        "--grpc-port", type=int, default=d.grpc_port, help="gRPC port; 0 picks a free one (default: %(default)s)"
    )
    serve.add_argument(
        "--http-port",
        type=int,
        default=d.http_port,
        help="HTTP/SSE port; 0 picks a free one, -1 disables (default: %(default)s)",
    )
    serve.add_argument("--db", default=d.db, help="sqlite file for threads, runs and checkpoints")
    serve.add_argument(
        "--api-key", default=os.environ.get("GATEWAY_API_KEY"), help="require this x-api-key (env GATEWAY_API_KEY)"
    )
    serve.add_argument("--run-timeout", type=float, default=None, help="seconds a run may take before it times out")
    serve.add_argument("--grace", type=float, default=d.grace, help="seconds live runs get to finish on SIGTERM")
    serve.add_argument(
        "--grpc-acceptors",
        type=_positive,
        default=d.grpc_acceptors,
        help="gRPC servers per process on the gRPC port, which take new calls in parallel (default: %(default)s)",
    )
    serve.add_argument(
        "--max-queued-runs",
        type=_positive,
        default=d.max_queued_runs,
        help="unfinished runs one thread may hold, its running one included (default: %(default)s)",
    )
    serve.add_argument(
        "--event-retention",
        type=float,
        default=d.event_retention,
        help="seconds the events of resumable runs are kept (default: %(default)s)",
    )
    serve.add_argument(
        "--idempotency-window",
        type=float,
        default=d.idempotency_window,
        help="seconds a request_id of a run or thread creation is remembered (default: %(default)s)",
    )
    serve.add_argument(
        "--stream-linger-ms",
        type=float,
        default=d.stream_linger_ms,
        help="milliseconds a run's stream, after it sends events, waits for more before it sends again, so that "
        "a busy stream sends fewer, fuller messages; the first event after a quiet spell and a run's end never "
        "wait; 0: no wait (default: %(default)s)",
    )
    serve.add_argument(
        "--stall-timeout",
        type=float,
        default=d.stall_timeout,
        help="seconds a reader may hold a run back before it is detached (default: %(default)s)",
    )
    serve.add_argument("--max-body-bytes", type=_positive, default=None, help=_MAX_BODY_HELP)
    serve.add_argument("--http-max-header-kb", type=_positive, default=d.http_max_header_kb, help=_HEADER_KB_HELP)
    serve.add_argument("--http-header-timeout", type=_seconds, default=d.http_header_timeout, help=_HEADER_TIMEOUT_HELP)
    serve.add_argument("--loop", choices=_LOOPS, default=d.loop, help=_LOOP_HELP)
    serve.add_argument("--log-level", default=d.log_level)
    serve.add_argument("--log-format", choices=("text", "json"), default=d.log_format, help=_LOG_FORMAT_HELP)
    serve.add_argument(
        "--cron-interval",
        type=float,
        default=d.cron_interval,
        help="seconds between looks for crons that are due (default: %(default)s)",
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        default=d.metrics_port,
        help="also serve /metrics and /ok on this port, on --host, without credentials (0 picks a free one; "
        "default: none, they are on --http-port, /metrics behind the API's auth)",
    )
    serve.add_argument("--otel", action="store_true", help=_OTEL_HELP)
    serve.add_argument(
        "--reflection",
        choices=("open", "auth", "off"),
        default=d.reflection,
        help="gRPC reflection: without credentials, with the same as any RPC, or not served (default: %(default)s)",
    )
    _grpc_connection_flags(serve.add_argument_group("gRPC messages and connections"), d)
    tls = serve.add_argument_group("TLS, on the gRPC, HTTP and metrics ports")
    tls.add_argument("--tls-cert-file", default=None, help="PEM certificate chain: serve TLS on every port")
    tls.add_argument("--tls-key-file", default=None, help="PEM private key of --tls-cert-file")
    tls.add_argument(
        "--tls-client-ca-file",
        default=None,
        help="PEM CA certificates: require a client certificate signed by one of them (mTLS)",
    )
    scale = serve.add_argument_group("scale-out (Postgres + Redis; several processes)")
    scale.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URI"),
        help="postgresql://... for threads, runs, the queue and checkpoints instead of sqlite (env DATABASE_URI)",
    )
    scale.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URI"),
        help="redis://... for run events and signals, so that processes share runs (env REDIS_URI)",
    )
    scale.add_argument(
        "--redis-prefix",
        default=os.environ.get("REDIS_KEY_PREFIX") or d.redis_prefix,
        help="prefix of every Redis key (env REDIS_KEY_PREFIX; default: %(default)s)",
    )
    scale.add_argument(
        "--database-pool-size",
        type=_positive,
        default=d.database_pool_size,
        help="Postgres connections per process; a quarter is kept for requests (default: %(default)s)",
    )
    scale.add_argument(
        "--workers", type=_positive, default=d.workers, help="processes serving the same ports (default: %(default)s)"
    )
    scale.add_argument(
        "--max-concurrent-runs",
        type=_positive,
        default=d.max_concurrent_runs,
        help="runs one process executes at once (default: %(default)s)",
    )
    scale.add_argument(
        "--lease-seconds",
        type=float,
        default=d.lease_seconds,
        help="a dead process's runs are taken over after this (default: %(default)s)",
    )
    scale.add_argument(
        "--max-attempts",
        type=_positive,
        default=d.max_attempts,
        help="times a run is started before a lost process makes it fail (default: %(default)s)",
    )

    bridge = sub.add_parser("bridge", help="serve the HTTP/SSE API in front of a remote gateway, speaking gRPC to it")
    bridge.add_argument("--target", default=b.target, help="the gateway's gRPC address (default: %(default)s)")
    target_tls = bridge.add_argument_group("TLS to the gateway (one started with --tls-cert-file)")
    target_tls.add_argument(
        "--target-tls", action="store_true", help="reach --target over TLS, trusting the system's CA certificates"
    )
    target_tls.add_argument(
        "--target-ca-file", default=None, help="PEM CA certificates to trust instead (implies --target-tls)"
    )
    target_tls.add_argument(
        "--target-cert-file",
        default=None,
        help="PEM client certificate chain, for a gateway that requires mTLS (implies --target-tls)",
    )
    target_tls.add_argument("--target-key-file", default=None, help="PEM private key of --target-cert-file")
    bridge.add_argument("--host", default=b.host)
    bridge.add_argument("--http-port", type=int, default=b.http_port)
    bridge.add_argument("--api-key", default=os.environ.get("GATEWAY_API_KEY"))
    bridge.add_argument(
        "--config", default=None, help="a langgraph.json whose http section (cors, disable_*, app) applies"
    )
    bridge.add_argument("--max-body-bytes", type=_positive, default=None, help=_MAX_BODY_HELP)
    bridge.add_argument("--http-max-header-kb", type=_positive, default=b.http_max_header_kb, help=_HEADER_KB_HELP)
    bridge.add_argument(
        "--http-header-timeout", type=_seconds, default=b.http_header_timeout, help=_HEADER_TIMEOUT_HELP
    )
    bridge.add_argument("--loop", choices=_LOOPS, default=b.loop, help=_LOOP_HELP)
    bridge.add_argument("--log-level", default=b.log_level)
    bridge.add_argument("--log-format", choices=("text", "json"), default=b.log_format, help=_LOG_FORMAT_HELP)
    bridge.add_argument(
        "--metrics-port",
        type=int,
        default=b.metrics_port,
        help="also serve /metrics and /ok on this port, without credentials (0 picks a free one; default: none)",
    )
    bridge.add_argument("--otel", action="store_true", help=_OTEL_HELP)
    return parser


# Young collections after this many allocations instead of 700: a streaming server allocates
# a few objects per event, nearly all freed by reference counting, and at the default the
# cyclic collector took a fifth to a third of the event loop's time under load.
GC_THRESHOLDS = (10_000, 10, 10)


def _tune_gc() -> None:
    # Everything loaded at startup (modules, graphs) lives as long as the process: frozen,
    # the collector no longer walks it on each full collection.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            sys.exit("error: --loop uvloop: uvloop is not installed")
        return None
    return uvloop.new_event_loop


def _ready(**ports: int | bool) -> None:
    # One machine-readable line on stdout: tests and scripts read the ports from it.
    print(json.dumps({"event": "ready", **ports}), flush=True)


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # SIGUSR1 logs where every task of the process waits: what a stuck process is doing.
    loop.add_signal_handler(signal.SIGUSR1, _log_tasks)
    return stop


def _log_tasks() -> None:
    for task in asyncio.all_tasks():
        frames = [f"  {f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}" for f in task.get_stack(limit=8)]
        logger.warning("task %s waits in:\n%s", task.get_name(), "\n".join(frames) or "  (not started)")


def _from_args(cls: type[T], args: argparse.Namespace) -> T:
    """The settings the command line gives; options left out (None) keep their defaults."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in vars(args).items() if k in names and v is not None})


def check_settings(settings: Settings) -> None:
    from gateway.config.loader import ConfigError

    if settings.redis_url and not settings.database_url:
        raise ConfigError("--redis-url needs --database-url: processes share runs through Postgres")
    if settings.workers > 1 and not settings.redis_url:
        raise ConfigError("--workers above 1 needs --database-url and --redis-url: the processes share their runs")
    if settings.lease_seconds <= 0:
        raise ConfigError("--lease-seconds must be positive")
    if settings.stall_timeout <= 0:
        raise ConfigError("--stall-timeout must be positive")
    if not 0 <= settings.stream_linger_ms <= 1000:
        raise ConfigError(f"--stream-linger-ms must be from 0 to 1000, not {settings.stream_linger_ms:g}")
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        raise ConfigError("--tls-cert-file and --tls-key-file go together: give both, or neither")
    if settings.tls_client_ca_file is not None and settings.tls_cert_file is None:
        raise ConfigError("--tls-client-ca-file needs --tls-cert-file and --tls-key-file: mTLS is TLS first")
    if settings.idempotency_window <= 0:
        raise ConfigError("--idempotency-window must be positive")


def _announce(config: Config) -> None:
    """What of langgraph.json the gateway does not apply, and what its auth leaves open."""
    if config.ignored:
        logger.warning("langgraph.json: not used by the gateway: %s", ", ".join(config.ignored))
    if config.auth is not None:
        if uncovered := config.auth.uncovered():
            logger.warning("auth: no @auth.on handler covers %s: every caller may do these", ", ".join(uncovered))
        if waiting := config.auth.waiting():
            logger.info("auth: handlers for %s apply once the gateway serves crons", ", ".join(waiting))


async def serve(settings: Settings, *, reuse_port: bool = False, ready: Callable[..., None] | None = None) -> None:
    import sqlite3

    from gateway.config.file import load_config
    from gateway.core.gateway import Gateway
    from gateway.process import tracing
    from gateway.rpc.auth import grpc_interceptors
    from gateway.rpc.server import GrpcServer
    from gateway.shared.errors import StartupError
    from gateway.shared.tls import Tls

    config = load_config(settings.config)
    _announce(config)
    tracing.setup(settings.otel, "langgraph-gateway")
    gateway = Gateway(config, settings)
    try:
        await gateway.start()
    except sqlite3.Error as exc:
        hint = " (its folder must exist and be writable)" if "unable to open" in str(exc) else ""
        raise StartupError(f"cannot use the database {settings.db}: {exc}{hint}") from None
    interceptors = grpc_interceptors(config, settings)
    tls = Tls.load(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
    grpc_server = GrpcServer(
        gateway, interceptors=interceptors, reuse_port=reuse_port, acceptors=settings.grpc_acceptors, tls=tls
    )
    servers = []
    try:
        grpc_port = await grpc_server.start(f"{settings.host}:{settings.grpc_port}")
        ports = {"grpc_port": grpc_port, "http_port": -1}
        if settings.http_port >= 0 or settings.metrics_port >= 0:
            from gateway.http._local import create_app
            from gateway.http.app import metrics_app
            from gateway.http.server import HttpServer, http_limits
            from gateway.process.health import Health

            limits = http_limits(settings)
            if settings.http_port >= 0:
                app = create_app(
                    gateway, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes, web=grpc_server.web()
                )
                servers.append(
                    HttpServer(app, settings.host, settings.http_port, reuse_port=reuse_port, limits=limits, tls=tls)
                )
                ports["http_port"] = await servers[-1].start()
            if settings.metrics_port >= 0:
                health = Health(gateway.dependency_checks(), draining=lambda: gateway.draining)
                app = metrics_app(health=health, refresh_metrics=gateway.refresh_metrics)
                port, option = settings.metrics_port, "--metrics-port"
                servers.append(
                    HttpServer(app, settings.host, port, reuse_port=reuse_port, option=option, limits=limits, tls=tls)
                )
                ports["metrics_port"] = await servers[-1].start()
        graphs = ", ".join(config.graphs)
        logger.info(
            "serving %s: gRPC on %s:%s, HTTP on %s:%s, tls: %s",
            graphs,
            settings.host,
            grpc_port,
            settings.host,
            ports["http_port"],
            "mTLS" if tls is not None and tls.client_ca else tls is not None,
        )
        _tune_gc()
        (ready or _ready)(**ports, tls=tls is not None)
        await _stop_event().wait()
        logger.info("draining: no new runs; live runs get %.0f s to finish", settings.grace)
        await grpc_server.enter_graceful_shutdown()
    finally:
        # Stop taking runs and let live ones end, then stop the servers (their streams end
        # with their runs), and only then close the storage they read.
        await gateway.drain(settings.grace)
        await grpc_server.stop(1.0)
        for server in servers:
            await server.stop()
        await gateway.close()
        tracing.shutdown()


async def run_bridge(settings: BridgeSettings) -> None:
    from gateway.bridge.app import create_remote_app
    from gateway.config.http import HttpConfig, read_http
    from gateway.config.loader import ConfigError
    from gateway.http.server import HttpServer, http_limits
    from gateway.process import tracing
    from gateway.shared.tls import TargetTls

    # The files first: a bad one stops the start before anything is served.
    tls = TargetTls.load(
        settings.target_tls, settings.target_ca_file, settings.target_cert_file, settings.target_key_file
    )
    tracing.setup(settings.otel, "langgraph-gateway-bridge")

    section, custom_app = HttpConfig(), None
    if settings.config:
        try:
            section, custom_app = read_http(settings.config)
        except ConfigError as exc:
            sys.exit(f"error: {exc}")
        if section.ignored:
            logger.warning("langgraph.json: not used by the bridge: %s", ", ".join(section.ignored))
    app, close = create_remote_app(
        settings.target,
        tls=tls,
        api_key=settings.api_key,
        max_body_bytes=settings.max_body_bytes,
        http=section,
        custom_app=custom_app,
    )
    servers: list[HttpServer] = []
    try:
        servers.append(HttpServer(app, settings.host, settings.http_port, limits=http_limits(settings)))
        ports = {"http_port": await servers[-1].start()}
        if settings.metrics_port >= 0:
            from gateway.http.app import metrics_app

            scrape = metrics_app(health=app.state.health, refresh_metrics=None)
            port, option = settings.metrics_port, "--metrics-port"
            servers.append(HttpServer(scrape, settings.host, port, option=option, limits=http_limits(settings)))
            ports["metrics_port"] = await servers[-1].start()
        logger.info(
            "bridge: HTTP on %s:%s in front of %s, tls: %s",
            settings.host,
            ports["http_port"],
            settings.target,
            "mTLS" if tls is not None and tls.mutual else tls is not None,
        )
        _tune_gc()
        _ready(**ports)
        await _stop_event().wait()
    finally:
        for server in servers:
            await server.stop()
        await close()
        tracing.shutdown()


def _worker(settings: Settings, ready_fd: int) -> int:
    """One of --workers' processes: a whole gateway on ports the others serve too."""

    from gateway.config.loader import ConfigError
    from gateway.shared.errors import StartupError, Unavailable

    def ready(**ports: int | bool) -> None:
        os.write(ready_fd, json.dumps(ports).encode() + b"\n")

    try:
        with asyncio.Runner(loop_factory=_loop_factory(settings.loop)) as runner:
            runner.run(serve(settings, reuse_port=True, ready=ready))
    except (ConfigError, StartupError) as exc:
        sys.exit(f"error: {exc}")
    except Unavailable as exc:
        sys.exit(f"error: {exc.message}")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    from gateway.process.logs import setup

    setup(args.log_level, args.log_format)
    from gateway.shared.errors import StartupError

    if args.command == "bridge":
        try:
            with asyncio.Runner(loop_factory=_loop_factory(args.loop)) as runner:
                runner.run(run_bridge(_from_args(BridgeSettings, args)))
        except StartupError as exc:
            sys.exit(f"error: {exc}")
        return
    from gateway.config.loader import ConfigError
    from gateway.shared.errors import Unavailable

    try:
        settings = _from_args(Settings, args)
        check_settings(settings)
        if settings.workers > 1:
            from gateway.process.workers import Supervisor

            sys.exit(Supervisor(settings, _worker).run())
        with asyncio.Runner(loop_factory=_loop_factory(settings.loop)) as runner:
            runner.run(serve(settings))
    except (ConfigError, StartupError) as exc:
        sys.exit(f"error: {exc}")
    except Unavailable as exc:
        # A backend that cannot be reached at start: one line, no traceback.
        sys.exit(f"error: {exc.message}")
