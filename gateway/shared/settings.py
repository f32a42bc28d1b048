"""The server's options, read once from the command line (and the environment) into one frozen
object that every part reads; defaults live here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Loop = Literal["auto", "uvloop", "asyncio"]
# gRPC reflection: served to anyone, to callers with credentials, or not at all.
Reflection = Literal["open", "auth", "off"]
GrpcCompression = Literal["none", "gzip", "deflate"]

# As the LangGraph Agent Server's HTTP_MAX_REQUEST_BODY_BYTES.
MAX_BODY_BYTES = 300 * 1024 * 1024
# An HTTP request's line and headers: at most this many bytes, all in within this many seconds.
MAX_HEADER_BYTES = 64 * 1024
HEADER_TIMEOUT = 30.0


@dataclass(frozen=True)
class Settings:
    config: str = "langgraph.json"
    host: str = "127.0.0.1"
    grpc_port: int = 50051
    # 0 picks a free port; -1 serves no HTTP.
    http_port: int = 2024
    db: str = "gateway.sqlite"
    api_key: str | None = None
    # Seconds a run may take; None: no limit.
    run_timeout: float | None = None
    # Seconds live runs get to finish on SIGTERM before they are interrupted.
    grace: float = 10.0
    # Unfinished runs (the active one included) one thread may hold; more are refused.
    max_queued_runs: int = 100
    # Seconds the events of resumable runs are kept, and how often they are pruned.
    event_retention: float = 3600.0
    # Seconds a creation's request_id is remembered: a repeat within it gets what the first made.
    idempotency_window: float = 86_400.0
    max_body_bytes: int = MAX_BODY_BYTES
    http_max_header_kb: int = MAX_HEADER_BYTES // 1024
    http_header_timeout: float = HEADER_TIMEOUT
    loop: Loop = "auto"
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"
    # A run's ring of events: at most this many, and this many bytes of payload.
    channel_capacity: int = 4096
    channel_bytes: int = 4 * 1024 * 1024
    # Seconds a subscriber that blocks a run may stall before it is detached.
    stall_timeout: float = 30.0
    # Milliseconds a stream that has just sent events waits for more before it sends again
    # (gateway.core.channel); 0 sends each as soon as it is ready.
    stream_linger_ms: float = 10.0
    # Finished runs remembered in memory for late joins and `/join` of stateless runs.
    retained_runs: int = 1024
    # Of those, the events of runs without a log, kept for a late join from the start: at most
    # this many bytes in all, each for at most `retained_seconds`.
    retained_bytes: int = 32 * 1024 * 1024
    retained_seconds: float = 60.0
    reflection: Reflection = "open"
    # The scale-out deployment: records, queue and checkpoints in Postgres (else sqlite), and
    # with Redis, events and signals shared by any number of processes.
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "langgraph-gateway:"
    # Connections each process may open to Postgres (Postgres's max_connections must cover
    # processes × this, and the default there is 100).
    database_pool_size: int = 10
    # Runs one process executes at once; more wait in the queue for a free slot.
    max_concurrent_runs: int = 256
    # Seconds a process's claim on a run lasts unless renewed; a dead process's runs are taken
    # over after it runs out, each run at most `max_attempts` times in all.
    lease_seconds: float = 30.0
    max_attempts: int = 3
    # Seconds between looks at the queue when no signal came (signals may be lost).
    poll_seconds: float = 1.0
    # Seconds between looks for crons that are due (as the Agent Server's scheduler, 5 s).
    cron_interval: float = 5.0
    # Processes serving the same ports (each one all of the gateway).
    workers: int = 1
    # grpc.aio servers each process runs on its gRPC port (gateway.rpc.server: each accepts one
    # call of a method at a time, a few turns of a busy loop apiece).
    grpc_acceptors: int = 4
    # The largest gRPC message either way (grpc's own default: 4 MiB received, no send limit).
    grpc_max_message_mb: int = 64
    # Responses compressed for the clients that accept it; requests are read either way.
    grpc_compression: GrpcCompression = "none"
    # Seconds a connection may live (then GOAWAY: the client reconnects, maybe to another
    # replica), the seconds its live streams then get (None: run_timeout, else no limit), and
    # the seconds an idle one is kept; None: no limit.
    grpc_max_connection_age: float | None = None
    grpc_max_connection_age_grace: float | None = None
    grpc_max_connection_idle: float | None = None
    # The shortest time between a client's keepalive pings the server accepts, with calls or
    # without: pings sooner count strikes, and a third gets GOAWAY "too_many_pings". 5 s lets
    # clients ping every 10 s with room for their timers' jitter.
    grpc_min_ping_interval: float = 5.0
    # A port of its own for /metrics and /ok (-1: none; they are on the HTTP port anyway).
    metrics_port: int = -1
    # TLS on every port (PEM files): the certificate chain and its key; with a CA, clients must
    # present a certificate it signed (mTLS).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None
    # OpenTelemetry traces (gateway.process.tracing); the standard OTEL_* variables can turn them on too.
    otel: bool = False

    @property
    def distributed(self) -> bool:
        """Runs may be created, executed and read by different processes."""
        return self.redis_url is not None


@dataclass(frozen=True)
class BridgeSettings:
    target: str = "127.0.0.1:50051"
    # TLS to the target (a gateway started with --tls-cert-file): with the system's roots, or
    # the CAs of target_ca_file; target_cert_file and target_key_file for one that requires
    # mTLS. Each file implies TLS.
    target_tls: bool = False
    target_ca_file: str | None = None
    target_cert_file: str | None = None
    target_key_file: str | None = None
    host: str = "127.0.0.1"
    http_port: int = 2024
    api_key: str | None = None
    # A langgraph.json whose `http` section (CORS, disabled routes, the custom app) applies.
    config: str | None = None
    # As Settings.metrics_port.
    metrics_port: int = -1
    max_body_bytes: int = MAX_BODY_BYTES
    http_max_header_kb: int = MAX_HEADER_BYTES // 1024
    http_header_timeout: float = HEADER_TIMEOUT
    loop: Loop = "auto"
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"
    otel: bool = False
