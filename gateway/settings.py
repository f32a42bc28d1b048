"""The server's options, read once from the command line (and the environment) into one frozen
object that every part reads; defaults live here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Loop = Literal["auto", "uvloop", "asyncio"]

# As the LangGraph Agent Server's HTTP_MAX_REQUEST_BODY_BYTES.
MAX_BODY_BYTES = 300 * 1024 * 1024


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
    max_body_bytes: int = MAX_BODY_BYTES
    loop: Loop = "auto"
    log_level: str = "info"
    # A run's ring of events: at most this many, and this many bytes of payload.
    channel_capacity: int = 4096
    channel_bytes: int = 4 * 1024 * 1024
    # Seconds a subscriber that blocks a run may stall before it is detached.
    stall_timeout: float = 30.0
    # Finished runs remembered in memory for late joins and `/join` of stateless runs.
    retained_runs: int = 1024
    # Of those, the events of runs without a log, kept for a late join from the start: at most
    # this many bytes in all, each for at most `retained_seconds`.
    retained_bytes: int = 32 * 1024 * 1024
    retained_seconds: float = 60.0


@dataclass(frozen=True)
class BridgeSettings:
    target: str = "127.0.0.1:50051"
    host: str = "127.0.0.1"
    http_port: int = 2024
    api_key: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    loop: Loop = "auto"
    log_level: str = "info"
