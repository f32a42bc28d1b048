"""Which run goes where and when: admission to a thread's queue (its multitask strategy decided
with the enqueue, in one step of the storage), claims of queued runs by the processes that
execute them (one running run per thread, at most `max_concurrent_runs` per process), leases
that hand a dead process's runs to another, and cancellation from anywhere.

The storage is the queue: a run is admitted `pending` and claimed `running` by one transaction
each, so the same decisions hold however many processes share the database. A run whose thread
is idle is claimed in its admission's transaction by the process that admitted it, and starts
at once, unless the process has no slot free or runs admitted before it wait for one; others wait
for a claim, which takes the oldest first. Each process claims when woken (a run was admitted or
ended, here or, through the signals, elsewhere) and, in a shared deployment, every poll interval,
since signals may be lost. A stateless run is stored like any other, with its temporary thread
(deleted with it when it ends): a process that dies does not lose it, a bulk cancel finds it,
and one that waits for a slot cannot overtake, and starve, the runs on threads before it.

A process renews the leases of the runs it executes; when a process dies, its leases run out,
and any process's sweep puts those runs back in the queue for another attempt (up to
`max_attempts`), which goes on from the run's last checkpoint. A draining process hands its
unfinished runs back without using up an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson

from gateway.config.graphs import GraphSpec
from gateway.core.assistants import Assistants
from gateway.core.bus import EventBus
from gateway.core.executor import Executor
from gateway.core.live import Finished, LiveRun
from gateway.core.metrics import RUNS_RUNNING
from gateway.process import metrics, tracing
from gateway.process.logs import run_context
from gateway.shared.errors import GatewayError, ShuttingDown
from gateway.shared.records import (
    UNFINISHED,
    AccessFilter,
    AssistantRecord,
    CancelAction,
    Claim,
    RequestKey,
    RunCreate,
    RunRecord,
    ThreadChange,
)
from gateway.shared.serde import dumps
from gateway.shared.settings import Settings
from gateway.storage import Storage
from gateway.storage.signals import SignalKind, Signals

logger = logging.getLogger("gateway.runs")

# Seconds between looks at a run queued before this process started, not claimed yet.
_TAKEN_POLL = 0.05
# Event seqs an attempt that left no log is taken to have used at most.
_LOST_SEQS = 1_000_000_000
# Called with (thread_id, run_id) for each run admitted, in any process.
AdmittedHandler = Callable[[str, str], None]


class Scheduler:
    def __init__(
        self,
        storage: Storage,
        bus: EventBus,
        executor: Executor,
        assistants: Assistants,
        signals: Signals,
        settings: Settings,
    ) -> None:
        self._storage = storage
        self._bus = bus
        self._executor = executor
        self._assistants = assistants
        self._signals = signals
        self._settings = settings
        # Another process may run the runs this one admits: they then live in storage only.
        self._shared = settings.distributed
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._live: dict[str, LiveRun] = {}
        self._finished: OrderedDict[str, Finished] = OrderedDict()
        self._executing = 0
        # Runs may wait for a slot here: a new run takes none before them (set when one was
        # admitted without a slot; cleared when a claim finds no more to take).
        self._backlog = False
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._accepting = True
        self._on_admitted: list[AdmittedHandler] = []
        signals.subscribe(self._signal)

    # Finding runs

    def live(self, run_id: str) -> LiveRun | None:
        return self._live.get(run_id)

    def finished(self, run_id: str) -> Finished | None:
        return self._finished.get(run_id)

    async def taken(self, record: RunRecord) -> None:
        """Returns once a run that is unfinished in storage is live in this process, or has
        ended. One process alone on its storage queues again, as it starts, what the process
        before it left queued or running; such a run is live here only once it is claimed (as
        slots free up), and until then a reader would find nothing of it and take it for over.
        With shared storage its events come through the bus wherever it runs: no wait."""
        if self._shared:
            return
        run_id = record.run_id
        while record.status in UNFINISHED and self.live(run_id) is None and self.finished(run_id) is None:
            await asyncio.sleep(_TAKEN_POLL)
            stored = await self._storage.get_run(run_id)
            if stored is None:
                return
            record = stored

    def live_on_thread(self, thread_id: str) -> list[LiveRun]:
        return [run for run in self._live.values() if run.thread_id == thread_id]

    def forget_thread(self, thread_id: str) -> None:
        """Forgets the finished runs of a deleted thread: they are deleted with it."""
        for run_id in [r for r, f in self._finished.items() if f.record.thread_id == thread_id]:
            del self._finished[run_id]

    def forget_run(self, run_id: str) -> None:
        """Forgets a finished run that was deleted."""
        self._finished.pop(run_id, None)

    def on_admitted(self, handler: AdmittedHandler) -> None:
        self._on_admitted.append(handler)

    # Admission

    @property
    def _free(self) -> int:
        return self._settings.max_concurrent_runs - self._executing

    @property
    def _slot(self) -> bool:
        """Whether a run admitted now may start at once: a slot is free and no run waits for one."""
        return self._free > 0 and not self._backlog

    async def admit(
        self,
        record: RunRecord,
        request: RunCreate,
        spec: GraphSpec,
        *,
        access: AccessFilter | None = None,
        assistant: AssistantRecord | None = None,
        request_key: RequestKey | None = None,
    ) -> RunRecord:
        """Admits `record`, made with `assistant` (its config goes to a thread made for the
        run): AssistantChanged if that is no longer the assistant's stored state. With
        `request_key`, Repeated when an earlier call stored it (nothing is admitted)."""
        if not self._accepting:
            raise ShuttingDown("the gateway is shutting down and takes no new runs")
        admission = await self._storage.admit_run(
            record,
            orjson.dumps(request),
            if_not_exists=request.if_not_exists,
            new_thread_metadata={**(request.config.get("metadata") or {}), **record.metadata},
            access=access,
            thread_metadata={"graph_id": spec.graph_id, "assistant_id": record.assistant_id},
            max_unfinished=self._settings.max_queued_runs,
            claim_as=self.owner if self._slot else None,
            lease_seconds=self._settings.lease_seconds,
            assistant_config=assistant.config if assistant is not None else None,
            new_thread=request.thread_id is None,
            assistant=assistant,
            request_key=request_key,
        )
        if not admission.claimed and self._free <= 0:
            # Queued for a slot (or behind its thread's run): it goes before those admitted later.
            self._backlog = True
        if admission.claimed:
            # Streamed from here by its caller: its events reach the shared log only if a reader
            # elsewhere asks (or it is resumable).
            self._start(self._register(record, request, spec, mirror=False))
        elif not self._shared:
            # Kept here until claimed: its readers find its events as soon as it has any.
            self._register(record, request, spec)
        if request.thread_id is not None:
            # For thread streams; nothing can follow a thread made for this run yet.
            await self._signals.publish("admitted", {"thread_id": record.thread_id, "run_id": record.run_id})
        action: CancelAction = "rollback" if request.multitask_strategy == "rollback" else "interrupt"
        for run_id in admission.cancel:
            await self.cancel(run_id, action)
        if not admission.claimed:
            await self._poke()
        return record

    def _register(
        self, record: RunRecord, request: RunCreate, spec: GraphSpec, *, after: int = 0, mirror: bool = True
    ) -> LiveRun:
        writer = self._bus.open(record.run_id, resumable=request.stream_resumable, after=after, mirror=mirror)
        live = LiveRun(record, request, spec, writer, attempt=record.attempt, owner=self.owner)
        # Those of the call that admitted it (a run revived from storage has neither).
        live.edge, live.trace = metrics.edge.get(), tracing.current_context()
        self._live[record.run_id] = live
        return live

    async def _poke(self) -> None:
        self._wake.set()
        if self._shared:
            await self._signals.publish("wake", {})

    # Claims and execution

    async def start(self) -> None:
        if not self._shared:
            # One process uses this storage: what it left running when it stopped goes on.
            await self._expire(all_running=True)
        self._loops.append(asyncio.create_task(self._claim_forever(), name="claims"))
        if self._shared:
            self._loops.append(asyncio.create_task(self._keep_leases(), name="leases"))
        self._wake.set()

    async def _claim_forever(self) -> None:
        poll = self._settings.poll_seconds if self._shared else None
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that
            # comes as the event is set, and the loop would outlive the scheduler's shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await self._wake.wait()
            self._wake.clear()
            if not self._accepting:
                continue
            try:
                await self._claim()
            except Exception as exc:
                logger.warning("claiming runs failed (retrying): %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(0.5)
                self._wake.set()

    async def _claim(self) -> None:
        while self._free > 0:
            wanted = self._free
            claims = await self._storage.claim_runs(self.owner, wanted, self._settings.lease_seconds)
            # Fewer than asked: none is left that a slot would start, and new runs may take
            # slots at once again; as many: more may wait.
            self._backlog = len(claims) == wanted
            for claim in claims:
                await self._take(claim)
            if not self._backlog:
                return

    async def _take(self, claim: Claim) -> None:
        record = claim.run
        live = self._live.get(record.run_id)
        if live is not None:
            # Admitted here: the same record object the edges hold sees it run, then end.
            live.record.status, live.record.updated_at = record.status, record.updated_at
            live.record.attempt = live.attempt = record.attempt
        else:
            live = await self._revive(claim)
            if live is None:
                return
        mark = await self._signals.cancel_mark(record.run_id) if self._shared else None
        if mark is not None:
            live.cancel_action = "rollback" if mark == "rollback" else "interrupt"
        self._start(live)

    async def _revive(self, claim: Claim) -> LiveRun | None:
        """A run admitted by another process, or before this one started: built from the
        request it was created with; its events go on after those already published."""
        record = claim.run
        try:
            request = RunCreate(**orjson.loads(claim.request))
            _, spec = await self._assistants.resolve(record.assistant_id)
        except (TypeError, ValueError, GatewayError) as exc:
            logger.error(
                "run %s cannot be executed here: %s: %s", record.run_id, type(exc).__name__, exc, extra=_ids(record)
            )
            live = None
        else:
            after = await self._bus.last_seq(record.run_id)
            if not after and record.attempt > 1 and not request.stream_resumable:
                # Its earlier attempt's events died with the process that ran it, unlogged:
                # ids go on above any it could have sent, so that a resume skips none. A
                # resumable run's readers got only what its log holds: it goes on after that.
                after = (record.attempt - 1) * _LOST_SEQS
            return self._register(record, request, spec, after=after)
        await self._storage.finish_run(
            record.run_id, record.thread_id, "error", _error_change(), owner=self.owner, attempt=record.attempt
        )
        return live

    def _start(self, live: LiveRun) -> None:
        self._executing += 1
        RUNS_RUNNING.inc()
        live.task = asyncio.create_task(self._execute(live), name=f"run-{live.run_id}")

    async def _execute(self, live: LiveRun) -> None:
        ids = {"run_id": live.run_id, "thread_id": live.thread_id, "assistant_id": live.record.assistant_id}
        try:
            with (
                run_context(**ids, attempt=live.attempt),
                tracing.run_span(f"run {live.spec.graph_id}", live.trace, _span_attributes(live)) as span,
            ):
                await self._executor.execute(live)
                tracing.end_run_span(span, live.record.status)
        finally:
            self._executing -= 1
            RUNS_RUNNING.dec()
            self._retire(live)
            if not live.temporary or self._backlog or self._free == 1:
                # Its thread's next run, or another waiting for the slot it freed, may go now
                # (a temporary thread has no next run: a claim would find nothing new).
                self._wake.set()

    def _retire(self, live: LiveRun) -> None:
        self._live.pop(live.run_id, None)
        if live.cancel_action not in ("rollback", "release"):  # deleted, or to be run again
            self._finished[live.run_id] = Finished(live.record, live.outcome.result())
            while len(self._finished) > self._settings.retained_runs:
                self._finished.popitem(last=False)
        live.done.set()

    # Leases

    async def _keep_leases(self) -> None:
        interval = self._settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                # Not those ending: their end may be recorded (and their lease gone with it)
                # while they write their last events, slow under load; none may be stopped.
                held = [run_id for run_id, live in self._live.items() if live.task is not None and not live.ending]
                lost = await self._storage.renew_leases(self.owner, held, self._settings.lease_seconds)
                for run_id in lost:
                    # Taken over after this process stalled past its lease: stop, write nothing.
                    live = self._live.get(run_id)
                    if live is not None and not live.ending and not live.done.is_set():
                        logger.warning("run %s was taken over by another process; stopping it here", run_id)
                        live.cancel_action = "release"
                        if live.task is not None and live.started:
                            live.task.cancel()
                await self._expire()
            except Exception as exc:
                logger.warning("keeping run leases failed (retrying): %s: %s", type(exc).__name__, exc)

    async def _expire(self, *, all_running: bool = False) -> None:
        requeued, failed = await self._storage.expire_leases(self._settings.max_attempts, all_running=all_running)
        for record in requeued:
            logger.warning(
                "run %s lost its process; queued for attempt %d", record.run_id, record.attempt + 1, extra=_ids(record)
            )
        for record in failed:
            logger.error(
                "run %s lost its process %d times; it ends with an error",
                record.run_id,
                record.attempt,
                extra=_ids(record),
            )
            writer = self._bus.open(
                record.run_id, resumable=record.resumable, after=await self._bus.last_seq(record.run_id)
            )
            await self._executor.fail_lost(record, writer)
        if requeued:
            await self._poke()

    # Cancellation

    async def cancel(self, run_id: str, action: CancelAction = "interrupt") -> None:
        """Cancels a run wherever it is; idempotent, and a run that ended is left as it is."""
        live = self._live.get(run_id)
        if live is not None:
            await self._cancel_here(live, action)
            return
        if not self._shared:
            return
        record = await self._storage.get_run(run_id)
        if record is None or record.status not in ("pending", "running"):
            return
        if record.status == "pending" and await self._cancel_queued(record, action):
            return
        # Running in another process: it cancels it when told, or on claiming it again.
        await self._signals.mark_cancel(run_id, action)
        await self._signals.publish("cancel", {"run_id": run_id, "action": action})

    async def _cancel_here(self, live: LiveRun, action: CancelAction) -> None:
        if live.done.is_set() or live.cancel_action is not None:
            return
        live.cancel_action = action
        if live.task is not None:
            if live.started:
                live.task.cancel()
            return
        # Still queued: it ends without starting.
        await self._executor.finish(live, "interrupted", queued=True)
        self._retire(live)
        self._wake.set()

    async def _cancel_queued(self, record: RunRecord, action: CancelAction) -> bool:
        """Ends a run queued by any process, unless a process claimed it meanwhile."""
        request = await self._storage.get_run_request(record.run_id)
        try:
            _, spec = await self._assistants.resolve(record.assistant_id)
            req = RunCreate(**orjson.loads(request or b"{}"))
        except (TypeError, ValueError, GatewayError):
            return False
        live = LiveRun(record, req, spec, self._bus.open(record.run_id, resumable=req.stream_resumable))
        live.cancel_action = action
        ended = await self._executor.finish(live, "interrupted", queued=True)
        return ended

    def cancel_soon(self, run_id: str) -> None:
        """Cancels from code that must not await (a stream's cleanup after its client left)."""
        live = self._live.get(run_id)
        if live is not None and live.task is not None and not live.done.is_set() and live.cancel_action is None:
            live.cancel_action = "interrupt"
            if live.started:
                live.task.cancel()
            return
        task = asyncio.create_task(self.cancel(run_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Signals from every process

    def _signal(self, kind: SignalKind, payload: dict[str, Any]) -> None:
        if kind == "wake":
            self._wake.set()
        elif kind == "cancel":
            live = self._live.get(str(payload.get("run_id")))
            if live is not None:
                action: CancelAction = "rollback" if payload.get("action") == "rollback" else "interrupt"
                task = asyncio.create_task(self._cancel_here(live, action))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        elif kind == "admitted":
            thread_id, run_id = str(payload.get("thread_id")), str(payload.get("run_id"))
            for handler in self._on_admitted:
                handler(thread_id, run_id)

    # Lifecycle

    async def shutdown(self, grace: float) -> None:
        """Takes no new runs, lets live ones finish for `grace` seconds, then interrupts them
        (a single process) or hands them back to the queue for another process (shared)."""
        self._accepting = False
        await self._until_done(list(self._live.values()), grace)
        remaining = list(self._live.values())
        if self._shared:
            running = [live.run_id for live in remaining if live.task is not None]
            for live in remaining:
                live.cancel_action = "release"
                if live.task is not None and live.started:
                    live.task.cancel()
            await self._until_done(remaining, 10)
            released = await self._storage.release_runs(self.owner, running)
            if released:
                logger.info("handed %d unfinished runs back to the queue", len(released))
                await self._signals.publish("wake", {})
        else:
            for live in remaining:
                await self._cancel_here(live, "interrupt")
            # Let the cancelled runs record how they ended before storage closes.
            await self._until_done(remaining, 10)
        loops = [*self._loops, *self._tasks]
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

    @staticmethod
    async def _until_done(runs: list[LiveRun], seconds: float) -> None:
        waiters = [asyncio.create_task(live.done.wait()) for live in runs if not live.done.is_set()]
        if not waiters:
            return
        _, pending = await asyncio.wait(waiters, timeout=seconds)
        for waiter in pending:
            waiter.cancel()


def _span_attributes(live: LiveRun) -> dict[str, str | int]:
    return {
        "langgraph.run.id": live.run_id,
        "langgraph.thread.id": live.thread_id,
        "langgraph.assistant.id": live.record.assistant_id,
        "langgraph.graph.id": live.spec.graph_id,
        "langgraph.run.attempt": live.attempt,
    }


def _ids(record: RunRecord) -> dict[str, str]:
    return {"run_id": record.run_id, "thread_id": record.thread_id, "assistant_id": record.assistant_id}


def _error_change() -> ThreadChange:
    return ThreadChange(status="error", error=dumps({"error": "InternalError", "message": "the run cannot be run"}))
