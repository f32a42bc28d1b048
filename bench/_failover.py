"""Two timings of a scale-out deployment, on two replicas of their own (one database, one Redis
key prefix, `--lease-seconds` short), apart from the interleaved scenarios:

- takeover: a long run is created through replica A on an idle thread (A claims it as it admits
  it) and joined through B; A is killed (SIGKILL); timed from the kill until B's join reads the
  run's second `metadata` event (attempt 2): B found the lease expired, claimed the run and
  started it again. A is started again for the next trial. Goal: 2 lease periods.
- cancel: a run executing on A is cancelled through B (`POST /threads/{t}/runs/{r}/cancel`);
  timed from the request until B's join reads the run's `end` event, which must say
  interrupted, as must the run's status. Goal: 1 s.

The joins are gRPC JoinRunStream calls through B, from the run's first event ("0"), so what is
timed is what a client of another replica sees."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from langgraph.gateway.v1 import runs_pb2, runs_pb2_grpc

from bench._clients import GRPC_OPTIONS
from bench._servers import GatewayServer
from bench._stats import median

# Events every 50 ms for far longer than a trial: the run is always live when it is killed or
# cancelled, and trials end it by cancelling it.
_LONG_RUN = {"count": 100_000, "interval": 0.05}
# Seconds a trial waits for what it times before it counts as an error.
_PATIENCE = 60.0
CANCEL_GOAL_S = 1.0


@dataclass
class Timings:
    goal_s: float
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self, **extra: Any) -> dict[str, Any]:
        return {
            "trials": len(self.seconds),
            "median_s": median(self.seconds),
            "max_s": max(self.seconds, default=None),
            "all_s": self.seconds,
            "goal_s": self.goal_s,
            "errors": {"count": len(self.errors), "samples": self.errors[:10]},
            **extra,
        }


class _Pair:
    """Replicas A and B of one deployment; A is killed and started again by the takeover."""

    def __init__(self, config: Path, args: Sequence[str]) -> None:
        self.config, self.args = config, tuple(args)
        self.a = self._start()
        self.b = self._start()

    def _start(self) -> GatewayServer:
        return GatewayServer(self.config, args=self.args).start()

    def restart_a(self) -> None:
        self.a.stop()
        self.a = self._start()

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()


def _case(event: runs_pb2.RunEvent) -> str | None:
    return event.WhichOneof("event")


async def _until(call: Any, wanted: Callable[[runs_pb2.RunEvent], bool], what: str) -> runs_pb2.RunEvent:
    """Reads the join until an event `wanted` says is the one; fails on its end or an error."""
    async with asyncio.timeout(_PATIENCE):
        while True:
            event = await call.read()
            if event is grpc.aio.EOF:
                raise RuntimeError(f"the join ended before {what}")
            if wanted(event):
                return event
            if _case(event) == "error":
                raise RuntimeError(f"error event before {what}: {event.error.error}: {event.error.message}")
            if _case(event) == "end":
                raise RuntimeError(f"the run ended {runs_pb2.RunStatus.Name(event.end.status)} before {what}")


class _Trial:
    """A long run created through A, joined through B."""

    def __init__(self, pair: _Pair) -> None:
        self.a = httpx.AsyncClient(base_url=f"http://127.0.0.1:{pair.a.http_port}", timeout=30)
        self.b = httpx.AsyncClient(base_url=f"http://127.0.0.1:{pair.b.http_port}", timeout=30)
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{pair.b.grpc_port}", options=GRPC_OPTIONS)
        self.thread_id = self.run_id = ""
        self.call: Any = None

    async def start(self) -> None:
        """Creates the run through A (its thread idle: A claims it as it admits it), joins it
        through B and returns once an event of it has come through B."""
        response = await self.a.post("/threads", json={})
        response.raise_for_status()
        self.thread_id = response.json()["thread_id"]
        body = {"assistant_id": "ticker", "input": _LONG_RUN, "stream_mode": ["custom"], "stream_resumable": True}
        response = await self.a.post(f"/threads/{self.thread_id}/runs", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"creating the run through A: HTTP {response.status_code}: {response.text[:200]}")
        self.run_id = response.json()["run_id"]
        request = runs_pb2.JoinRunStreamRequest(thread_id=self.thread_id, run_id=self.run_id, last_event_id="0")
        self.call = runs_pb2_grpc.RunsServiceStub(self.channel).JoinRunStream(request)
        await _until(self.call, lambda e: _case(e) == "custom", "its first event through B")

    async def cancel_through_b(self) -> None:
        response = await self.b.post(f"/threads/{self.thread_id}/runs/{self.run_id}/cancel")
        if response.status_code not in (200, 202, 204):
            raise RuntimeError(f"cancel through B: HTTP {response.status_code}: {response.text[:200]}")

    async def status_through_b(self) -> str:
        response = await self.b.get(f"/threads/{self.thread_id}/runs/{self.run_id}")
        response.raise_for_status()
        return str(response.json()["status"])

    async def aclose(self) -> None:
        if self.call is not None:
            self.call.cancel()
        if self.thread_id and self.run_id:
            # Whatever happened, the run does not go on ticking in the background.
            try:
                await self.cancel_through_b()
            except (httpx.HTTPError, RuntimeError):
                pass
        await self.channel.close()
        await self.a.aclose()
        await self.b.aclose()


async def _cancel_trial(pair: _Pair) -> float:
    trial = _Trial(pair)
    try:
        await trial.start()
        started = time.perf_counter()
        await trial.cancel_through_b()
        end = await _until(trial.call, lambda e: _case(e) == "end", "its end")
        took = time.perf_counter() - started
        if end.end.status != runs_pb2.RUN_STATUS_INTERRUPTED:
            raise RuntimeError(f"the run ended {runs_pb2.RunStatus.Name(end.end.status)}, not interrupted")
        if (status := await trial.status_through_b()) != "interrupted":
            raise RuntimeError(f"the run's status is {status}, not interrupted")
        trial.thread_id = ""  # ended: nothing to clean up
        return took
    finally:
        await trial.aclose()


async def _takeover_trial(pair: _Pair) -> float:
    trial = _Trial(pair)
    try:
        await trial.start()
        killed = time.perf_counter()
        await asyncio.to_thread(pair.a.kill)

        def attempt_2(event: runs_pb2.RunEvent) -> bool:
            return _case(event) == "metadata" and event.metadata.attempt >= 2

        event = await _until(trial.call, attempt_2, "attempt 2's metadata")
        took = time.perf_counter() - killed
        if event.metadata.attempt != 2:
            raise RuntimeError(f"the run went on as attempt {event.metadata.attempt}, not 2")
        return took
    finally:
        await trial.aclose()


def measure(
    config: Path,
    args: Sequence[str],
    *,
    lease_seconds: float,
    takeover_trials: int,
    cancel_trials: int,
    scenarios: Collection[str],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """`args`: the deployment's backends (bench._backends.shared_backends)."""
    pair = _Pair(config, (*args, "--lease-seconds", f"{lease_seconds:g}"))
    out: dict[str, Any] = {}
    try:
        if "cancel" in scenarios:
            log(f"cancel across replicas: {cancel_trials} trials")
            cancel = Timings(CANCEL_GOAL_S)
            for _ in range(cancel_trials):
                try:
                    cancel.seconds.append(asyncio.run(_cancel_trial(pair)))
                except Exception as exc:
                    cancel.errors.append(f"cancel: {type(exc).__name__}: {exc}"[:300])
            out["cancel"] = cancel.summary()
        if "takeover" in scenarios:
            log(f"takeover of a killed replica's run: {takeover_trials} trials, --lease-seconds {lease_seconds:g}")
            takeover = Timings(2 * lease_seconds)
            for i in range(takeover_trials):
                if i:
                    pair.restart_a()
                try:
                    takeover.seconds.append(asyncio.run(_takeover_trial(pair)))
                except Exception as exc:
                    takeover.errors.append(f"takeover: {type(exc).__name__}: {exc}"[:300])
            out["takeover"] = takeover.summary(lease_s=lease_seconds)
    finally:
        pair.stop()
    return out
