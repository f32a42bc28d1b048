"""Which run goes when: admission to a thread's queue (its multitask strategy decided with the
enqueue, in one step of the storage), one running run per thread, the next run claimed from
storage when one ends, and cancellation of queued and running runs.

The storage is the queue: a run is admitted as `pending` and claimed (`running`) by one
transaction each, so the same decisions hold when another process shares the database. What
this process adds is a worker per thread with runs, woken when a run is admitted or ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable

import orjson

from gateway.config import GraphSpec
from gateway.core.bus import EventBus
from gateway.core.executor import Executor
from gateway.core.live import Finished, LiveRun
from gateway.errors import Unavailable
from gateway.records import AccessFilter, CancelAction, RunCreate, RunRecord
from gateway.settings import Settings
from gateway.storage import Storage

logger = logging.getLogger("gateway.runs")


class Scheduler:
    def __init__(self, storage: Storage, bus: EventBus, executor: Executor, settings: Settings) -> None:
        self._storage = storage
        self._bus = bus
        self._executor = executor
        self._settings = settings
        self._live: dict[str, LiveRun] = {}
        self._finished: OrderedDict[str, Finished] = OrderedDict()
        self._workers: dict[str, asyncio.Task[None]] = {}
        # Threads whose worker must look for a run again before it stops.
        self._woken: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepting = True
        # Called with each run admitted, whichever edge created it (thread streams follow them).
        self.on_admitted: list[Callable[[LiveRun], None]] = []

    # Finding runs

    def live(self, run_id: str) -> LiveRun | None:
        return self._live.get(run_id)

    def finished(self, run_id: str) -> Finished | None:
        return self._finished.get(run_id)

    def live_on_thread(self, thread_id: str) -> list[LiveRun]:
        return [run for run in self._live.values() if run.thread_id == thread_id]

    def forget_thread(self, thread_id: str) -> None:
        """Forgets the finished runs of a deleted thread: they are deleted with it."""
        for run_id in [r for r, f in self._finished.items() if f.record.thread_id == thread_id]:
            del self._finished[run_id]

    # Admission

    async def admit(
        self, record: RunRecord, request: RunCreate, spec: GraphSpec, *, access: AccessFilter | None = None
    ) -> LiveRun:
        if not self._accepting:
            raise Unavailable("the gateway is shutting down and takes no new runs")
        if request.temporary:
            # Its own new thread, nothing to queue behind, nothing stored: it starts now.
            live = self._register(record, request, spec)
            record.status = "running"
            self._start(live)
            return live
        metadata = {"graph_id": spec.graph_id, "assistant_id": record.assistant_id}
        cancel = await self._storage.admit_run(
            record,
            orjson.dumps(request),
            if_not_exists=request.if_not_exists,
            new_thread_metadata={**(request.config.get("metadata") or {}), **record.metadata},
            access=access,
            thread_metadata=metadata,
            max_unfinished=self._settings.max_queued_runs,
        )
        live = self._register(record, request, spec)
        action: CancelAction = "rollback" if request.multitask_strategy == "rollback" else "interrupt"
        for run_id in cancel:
            other = self._live.get(run_id)
            if other is not None:
                await self.cancel(other, action)
        self._wake(record.thread_id)
        return live

    def _register(self, record: RunRecord, request: RunCreate, spec: GraphSpec) -> LiveRun:
        live = LiveRun(record, request, spec, self._bus.open(record.run_id, resumable=request.stream_resumable))
        self._live[record.run_id] = live
        for callback in self.on_admitted:
            callback(live)
        return live

    # Execution

    def _wake(self, thread_id: str) -> None:
        if thread_id in self._workers:
            self._woken.add(thread_id)
        else:
            self._workers[thread_id] = asyncio.create_task(self._worker(thread_id), name=f"thread-{thread_id}")

    async def _worker(self, thread_id: str) -> None:
        try:
            while True:
                self._woken.discard(thread_id)
                record = await self._storage.claim_run(thread_id)
                if record is None:
                    if thread_id in self._woken:
                        continue
                    return
                live = self._live.get(record.run_id)
                if live is None:
                    logger.warning("run %s was claimed but this process does not hold it", record.run_id)
                    continue
                # The same record object the edges hold: they see it running, then ended.
                live.record.status, live.record.updated_at = record.status, record.updated_at
                task = self._start(live)
                # Not cancelled with the worker: a run ends through cancel().
                await asyncio.wait({task})
        finally:
            if self._workers.get(thread_id) is asyncio.current_task():
                del self._workers[thread_id]

    def _start(self, live: LiveRun) -> asyncio.Task[None]:
        live.task = asyncio.create_task(self._execute(live), name=f"run-{live.run_id}")
        return live.task

    async def _execute(self, live: LiveRun) -> None:
        try:
            await self._executor.execute(live)
        finally:
            self._retire(live)

    def _retire(self, live: LiveRun) -> None:
        self._live.pop(live.run_id, None)
        if live.cancel_action != "rollback":  # a rolled back run is deleted, not finished
            self._finished[live.run_id] = Finished(live.record, live.outcome.result())
            while len(self._finished) > self._settings.retained_runs:
                self._finished.popitem(last=False)
        live.done.set()

    # Cancellation

    async def cancel(self, live: LiveRun, action: CancelAction = "interrupt") -> None:
        """Idempotent: a run that ended or is being cancelled is left as it is."""
        if live.done.is_set() or live.cancel_action is not None:
            return
        live.cancel_action = action
        if live.task is not None:
            if live.started:
                live.task.cancel()
            return
        # Still queued: it ends without starting, unless it was claimed meanwhile.
        await self._executor.finish(live, "interrupted")
        self._retire(live)
        self._wake(live.thread_id)

    def cancel_soon(self, live: LiveRun) -> None:
        """Cancels from code that must not await (a stream's cleanup after its client left)."""
        if live.done.is_set() or live.cancel_action is not None:
            return
        if live.task is not None:
            live.cancel_action = "interrupt"
            if live.started:
                live.task.cancel()
            return
        task = asyncio.create_task(self.cancel(live))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Lifecycle

    async def shutdown(self, grace: float) -> None:
        """Takes no new runs, lets live ones finish for `grace` seconds, then interrupts them."""
        self._accepting = False
        await self._until_done(list(self._live.values()), grace)
        remaining = list(self._live.values())
        for live in remaining:
            await self.cancel(live, "interrupt")
        # Let the cancelled runs record how they ended before storage closes.
        await self._until_done(remaining, 10)
        workers = [*self._workers.values(), *self._tasks]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    @staticmethod
    async def _until_done(runs: list[LiveRun], seconds: float) -> None:
        waiters = [asyncio.create_task(live.done.wait()) for live in runs if not live.done.is_set()]
        if not waiters:
            return
        _, pending = await asyncio.wait(waiters, timeout=seconds)
        for waiter in pending:
            waiter.cancel()
