"""What happens to a run: creation, queueing behind the thread's active run, execution,
fan-out of its events, cancellation, and the thread's state when it ends."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import langgraph.version
from langgraph.checkpoint.base import BaseCheckpointSaver

from gateway._utils import is_uuid, run_base_ms, uuid7
from gateway.config import GraphSpec
from gateway.core.assistants import Assistants
from gateway.core.channel import Event, FellBehind, RunChannel
from gateway.core.errors import error_payload
from gateway.core.state import thread_fields_from_state
from gateway.core.stream import STREAM_MODES, stream_graph, to_command
from gateway.errors import BadRequest, Conflict, EventsExpired, InvalidArgument, NotFound, TooManyRuns, Unavailable
from gateway.serde import dumps, loads
from gateway.storage import RunRecord, Storage, ThreadRecord, now_iso

logger = logging.getLogger("gateway.runs")

ACTIVE_STATUSES = ("pending", "running")
# Resumable runs write their events to the log in batches of this many, or this often.
_LOG_BATCH = 256
_LOG_INTERVAL = 0.05
MULTITASK_STRATEGIES = ("reject", "interrupt", "rollback", "enqueue")
DURABILITIES = ("sync", "async", "exit")


@dataclass
class RunCreate:
    """A run-create request as both edges parse it; fields mirror the HTTP body."""

    assistant_id: str
    thread_id: str | None = None  # None: a stateless run on a temporary thread
    input: Any = None
    command: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    stream_mode: list[str] = field(default_factory=lambda: ["values"])
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    on_disconnect: str = "continue"
    multitask_strategy: str = "enqueue"
    if_not_exists: str = "reject"
    interrupt_before: list[str] | str | None = None
    interrupt_after: list[str] | str | None = None
    checkpoint_id: str | None = None
    checkpoint: dict[str, Any] | None = None
    durability: str = "async"
    on_completion: str = "delete"
    after_seconds: float = 0.0


@dataclass(eq=False)
class ActiveRun:
    record: RunRecord
    spec: GraphSpec
    request: RunCreate
    channel: RunChannel
    temporary: bool
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    cancel_action: str | None = None  # "interrupt" or "rollback" once cancelled
    # Resumable runs: events not yet written to the run's event log.
    unlogged: list[Event] | None = None
    last_values: bytes | None = None
    interrupt_chunks: list[bytes] = field(default_factory=list)
    error: bytes | None = None

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def thread_id(self) -> str:
        return self.record.thread_id


def parse_event_id(value: str | None, run_id: str | None = None) -> int | None:
    """The seq to replay after, from a Last-Event-ID; None means live only. With `run_id`,
    an id of another run (its "<ms>" differs) is refused rather than misread."""
    if value is None or value == "":
        return None
    value = value.strip()
    if value in ("-1", "0", "-"):
        return 0
    ms, _, seq = value.rpartition("-")
    try:
        after = max(int(seq), 0)
        if ms and run_id is not None and int(ms) != run_base_ms(run_id):
            raise InvalidArgument(f"last_event_id {value!r} is an event id of another run than {run_id}")
    except ValueError:
        raise InvalidArgument(
            f"last_event_id {value!r} is not an event id: expected '<ms>-<seq>', '-1' or '0'"
        ) from None
    return after


class RunManager:
    """Runs graphs for the edges. One active run per thread; others wait in its queue."""

    def __init__(
        self,
        storage: Storage,
        assistants: Assistants,
        checkpointer: BaseCheckpointSaver[Any] | None,
        *,
        run_timeout: float | None = None,
        channel_capacity: int = 4096,
        retained_runs: int = 256,
        max_queued_runs: int = 100,
        event_retention: float = 3600.0,
    ) -> None:
        self.storage = storage
        self.assistants = assistants
        self.checkpointer = checkpointer
        self.run_timeout = run_timeout
        self.channel_capacity = channel_capacity
        self._retained_runs = retained_runs
        self.max_queued_runs = max_queued_runs
        self.event_retention = event_retention
        self._runs: dict[str, ActiveRun] = {}
        self._finished: OrderedDict[str, ActiveRun] = OrderedDict()
        self._queues: dict[str, deque[ActiveRun]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._accepting = True
        self._cleanups: set[asyncio.Task[None]] = set()
        self.on_created: list[Callable[[ActiveRun], None]] = []

    # Lifecycle

    async def recover(self) -> None:
        """Runs the previous process left active cannot go on: mark them and free their threads."""
        for run in await self.storage.runs_with_status(ACTIVE_STATUSES):
            await self.storage.update_run_status(run.run_id, "error")
            error = {"error": "ServerRestarted", "message": "the gateway stopped while the run was active"}
            await self.storage.update_thread(run.thread_id, status="error", error=dumps(error))
            logger.warning("run %s on thread %s was %s when the gateway stopped", run.run_id, run.thread_id, run.status)
        pruned = await self.storage.prune_events(self.event_retention)
        if pruned:
            logger.info("pruned %d events of resumable runs older than %.0f s", pruned, self.event_retention)

    async def shutdown(self, grace: float) -> None:
        """Stops taking runs, lets active ones finish for `grace` seconds, then interrupts them."""
        self._accepting = False
        active = [run for run in self._runs.values() if not run.done.is_set()]
        if active:
            waiters = [asyncio.create_task(run.done.wait()) for run in active]
            _, pending = await asyncio.wait(waiters, timeout=grace)
            for waiter in pending:
                waiter.cancel()
        remaining = [run for run in self._runs.values() if not run.done.is_set()]
        for run in remaining:
            await self.cancel_run(run, "interrupt")
        # Let the cancelled runs record how they ended before storage closes.
        if remaining:
            await asyncio.wait([asyncio.create_task(run.done.wait()) for run in remaining], timeout=10)
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    # Creating runs

    async def create(self, req: RunCreate) -> ActiveRun:
        if not self._accepting:
            raise Unavailable("the gateway is shutting down and takes no new runs")
        self._validate(req)
        assistant, spec = await self.assistants.resolve(req.assistant_id)
        stateless = req.thread_id is None
        # A stateless run's thread is temporary unless the request keeps it.
        temporary = stateless and req.on_completion == "delete"
        if stateless:
            if req.command and "resume" in req.command:
                raise BadRequest("You must provide a thread_id when resuming.")
            thread_id = uuid7()
            if not temporary:
                now = now_iso()
                await self.storage.create_thread(
                    ThreadRecord(
                        thread_id, now, now, now, {"graph_id": spec.graph_id, "assistant_id": assistant.assistant_id}
                    )
                )
        else:
            thread_id = req.thread_id  # type: ignore[assignment]
            if not is_uuid(thread_id):
                raise InvalidArgument(f"thread_id {thread_id!r} is not a UUID")
            thread = await self.storage.get_thread(thread_id)
            if thread is None:
                if req.if_not_exists != "create":
                    raise NotFound(f"Thread {thread_id} not found.")
                now = now_iso()
                await self.storage.create_thread(
                    ThreadRecord(
                        thread_id, now, now, now, {"graph_id": spec.graph_id, "assistant_id": assistant.assistant_id}
                    )
                )
            elif thread.metadata.get("graph_id") != spec.graph_id:
                # The thread's state is read with the graph that last ran on it.
                await self.storage.update_thread(
                    thread_id,
                    metadata={**thread.metadata, "graph_id": spec.graph_id, "assistant_id": assistant.assistant_id},
                )
            queue = self._queues.get(thread_id)
            if queue:
                if len(queue) >= self.max_queued_runs:
                    raise TooManyRuns(
                        f"Thread {thread_id} already has {len(queue)} queued runs (the limit is {self.max_queued_runs})."
                    )
                if req.multitask_strategy == "reject":
                    raise Conflict(
                        f"Thread {thread_id} is already running a task. Wait for it to finish or choose a "
                        "different multitask strategy."
                    )
                if req.multitask_strategy in ("interrupt", "rollback"):
                    for other in list(queue):
                        await self.cancel(thread_id, other.run_id, action=req.multitask_strategy)

        run_id = uuid7()
        now = now_iso()
        metadata = {**req.metadata, "graph_id": spec.graph_id, "assistant_id": assistant.assistant_id}
        record = RunRecord(
            run_id=run_id,
            thread_id=thread_id,
            assistant_id=assistant.assistant_id,
            created_at=now,
            updated_at=now,
            status="pending",
            metadata=metadata,
            multitask_strategy=req.multitask_strategy,
            kwargs=self._kwargs(req, temporary),
        )
        if not temporary:
            # A temporary thread and its run live in memory only: nothing outlives them but
            # their event log, so nothing is written for them (several sqlite round trips
            # per run that stateless runs would otherwise wait on).
            await self.storage.create_run(record)
            await self.storage.update_thread(thread_id, status="busy")
        base_ms = run_base_ms(run_id)
        run = ActiveRun(
            record=record,
            spec=spec,
            request=req,
            channel=RunChannel(run_id, base_ms, capacity=self.channel_capacity),
            temporary=temporary,
            unlogged=[] if req.stream_resumable else None,
        )
        if req.stream_resumable:
            run.channel.logged_seq = 0
        self._runs[run_id] = run
        self._queues.setdefault(thread_id, deque()).append(run)
        if thread_id not in self._workers:
            self._workers[thread_id] = asyncio.create_task(self._thread_worker(thread_id), name=f"thread-{thread_id}")
        for callback in self.on_created:
            callback(run)
        return run

    @staticmethod
    def _validate(req: RunCreate) -> None:
        if not req.assistant_id:
            raise InvalidArgument("assistant_id is required")
        for mode in req.stream_mode:
            if mode not in STREAM_MODES:
                raise InvalidArgument(f"stream_mode {mode!r} is not one of: {', '.join(STREAM_MODES)}")
        if req.multitask_strategy not in MULTITASK_STRATEGIES:
            raise InvalidArgument(
                f"multitask_strategy {req.multitask_strategy!r} is not one of: reject, interrupt, rollback, enqueue"
            )
        if req.on_disconnect not in ("cancel", "continue"):
            raise InvalidArgument(f"on_disconnect {req.on_disconnect!r} is not one of: cancel, continue")
        if req.if_not_exists not in ("create", "reject"):
            raise InvalidArgument(f"if_not_exists {req.if_not_exists!r} is not one of: create, reject")
        if req.durability not in DURABILITIES:
            raise InvalidArgument(f"durability {req.durability!r} is not one of: sync, async, exit")
        for name in ("interrupt_before", "interrupt_after"):
            value = getattr(req, name)
            if isinstance(value, str) and value != "*":
                raise InvalidArgument(f'{name} must be "*" or a list of node names')
        if req.checkpoint_id is not None and not is_uuid(req.checkpoint_id):
            raise InvalidArgument(f"checkpoint_id {req.checkpoint_id!r}: Invalid checkpoint ID")
        configurable = req.config.get("configurable")
        if configurable is not None and not isinstance(configurable, dict):
            raise InvalidArgument("config.configurable must be an object")
        if configurable and req.context:
            raise BadRequest(
                "Cannot specify both configurable and context. Prefer setting context alone. Context was "
                "introduced in LangGraph 0.6.0 and is the long term planned replacement for configurable."
            )

    @staticmethod
    def _kwargs(req: RunCreate, temporary: bool) -> dict[str, Any]:
        return {
            "input": req.input,
            "command": req.command,
            "config": req.config,
            "context": req.context,
            "stream_mode": req.stream_mode,
            "interrupt_before": req.interrupt_before,
            "interrupt_after": req.interrupt_after,
            "webhook": None,
            "feedback_keys": None,
            "temporary": temporary,
            "subgraphs": req.stream_subgraphs,
            "resumable": req.stream_resumable,
            "checkpoint_during": req.durability != "exit",
            "durability": req.durability,
        }

    # Executing runs

    async def _thread_worker(self, thread_id: str) -> None:
        queue = self._queues[thread_id]
        try:
            while queue:
                run = queue[0]
                if not run.done.is_set():
                    run.task = asyncio.create_task(self._execute(run), name=f"run-{run.run_id}")
                    await asyncio.wait({run.task})
                if queue and queue[0] is run:
                    queue.popleft()
        finally:
            self._workers.pop(thread_id, None)
            if not queue:
                self._queues.pop(thread_id, None)

    def _graph_config(self, run: ActiveRun) -> dict[str, Any]:
        req = run.request
        assistant_config = self.assistants.get_config(run.record.assistant_id)
        configurable = {
            **(assistant_config.get("configurable") or {}),
            **(req.config.get("configurable") or {}),
            **(req.context or {}),
            "run_id": run.run_id,
            "thread_id": run.thread_id,
            "graph_id": run.spec.graph_id,
            "assistant_id": run.record.assistant_id,
        }
        if req.checkpoint_id:
            configurable["checkpoint_id"] = req.checkpoint_id
        if req.checkpoint:
            # A checkpoint of this run's thread: its thread_id cannot point elsewhere.
            configurable.update({k: v for k, v in req.checkpoint.items() if k != "thread_id"})
        metadata = {
            **(req.config.get("metadata") or {}),
            **run.record.metadata,
            "run_attempt": 1,
            "langgraph_version": langgraph.version.__version__,
        }
        config = {**assistant_config, **req.config, "configurable": configurable, "metadata": metadata}
        if "recursion_limit" not in config:
            config["recursion_limit"] = 25
        return config

    async def _execute(self, run: ActiveRun) -> None:
        req = run.request
        channel = run.channel
        status = "error"
        try:
            run.record.status = "running"
            if not run.temporary:
                await self.storage.update_run_status(run.run_id, "running")
            graph = run.spec.graph.copy(update={"checkpointer": None if run.temporary else self.checkpointer})
            config = self._graph_config(run)
            graph_input: Any = to_command(req.command) if req.command else req.input
            self._publish(run, "metadata", (), dumps({"run_id": run.run_id, "attempt": 1}))
            parts = stream_graph(
                graph,
                graph_input,
                config,
                stream_mode=req.stream_mode,
                subgraphs=req.stream_subgraphs,
                run_id=run.run_id,
                context=req.context or None,
                interrupt_before=req.interrupt_before,
                interrupt_after=req.interrupt_after,
                durability=None if run.temporary else req.durability,
            )
            loop = asyncio.get_running_loop()
            flushed_at = loop.time()
            async with asyncio.timeout(self.run_timeout), aclosing(parts):
                async for name, ns, data in parts:
                    event = channel.publish(name, ns, data)
                    if not ns and (name == "values" or name == "updates"):
                        self._note_result(run, name, data)
                    if run.unlogged is not None:
                        # Written in batches, and always before the ring could drop them.
                        run.unlogged.append(event)
                        if len(run.unlogged) >= _LOG_BATCH or loop.time() - flushed_at > _LOG_INTERVAL:
                            await self._flush_log(run)
                            flushed_at = loop.time()
                    if channel.full:
                        # Past the ring's bounds: write what the log lacks, then wait for
                        # subscribers that hold the oldest events, if any.
                        await self._flush_log(run)
                        await channel.wait_writable()
            status = "success"
        except asyncio.CancelledError:
            status = "interrupted"
        except TimeoutError:
            status = "timeout"
        except Exception as exc:
            status = "error"
            run.error = dumps(error_payload(exc))
            self._publish(run, "error", (), run.error)
            logger.info("run %s failed: %s: %s", run.run_id, type(exc).__name__, exc, exc_info=exc)
        finally:
            await asyncio.shield(self._finish(run, status))

    def _publish(self, run: ActiveRun, name: str, ns: tuple[str, ...], data: bytes) -> None:
        event = run.channel.publish(name, ns, data)
        if run.unlogged is not None:
            run.unlogged.append(event)

    async def _flush_log(self, run: ActiveRun) -> None:
        if run.unlogged:
            events, run.unlogged = run.unlogged, []
            await self.storage.append_events(run.run_id, events)
            run.channel.logged_seq = events[-1].seq

    @staticmethod
    def _note_result(run: ActiveRun, name: str, data: bytes) -> None:
        if name == "values":
            run.last_values = data
        if b'"__interrupt__"' in data:
            run.interrupt_chunks.append(data)

    async def _finish(self, run: ActiveRun, status: str) -> None:
        try:
            if run.cancel_action == "rollback":
                await self.storage.delete_events(run.run_id)
                run.unlogged = None
                if not run.temporary:
                    await self.storage.delete_run(run.run_id)
                    await self.storage.delete_run_checkpoints(run.thread_id, run.run_id)
            else:
                if run.cancel_action == "interrupt":
                    status = "interrupted"
                run.record.status = status
                if not run.temporary:
                    await self.storage.update_run_status(run.run_id, status)
            if not run.temporary:
                await self._update_thread(run, status)
        except Exception:
            logger.exception("could not record the end of run %s", run.run_id)
        finally:
            self._publish(run, "end", (), b'{"status":"' + run.record.status.encode() + b'"}')
            try:
                await self._flush_log(run)
            except Exception:
                logger.exception("could not write the event log of run %s", run.run_id)
            run.channel.close()
            run.done.set()
            self._runs.pop(run.run_id, None)
            self._finished[run.run_id] = run
            while len(self._finished) > self._retained_runs:
                self._finished.popitem(last=False)

    async def _update_thread(self, run: ActiveRun, status: str) -> None:
        fields: dict[str, Any] = {}
        if not run.temporary and self.checkpointer is not None:
            graph = run.spec.graph.copy(update={"checkpointer": self.checkpointer})
            try:
                state = await graph.aget_state({"configurable": {"thread_id": run.thread_id}})
            except Exception as exc:
                # LangGraph reads the state by preparing the next tasks, which fails when the
                # input does not fit the graph's state schema; the thread must not stay busy.
                logger.info(
                    "could not read thread %s after run %s: %s: %s", run.thread_id, run.run_id, type(exc).__name__, exc
                )
            else:
                fields.update(thread_fields_from_state(state))
        if status == "error":
            fields["status"] = "error"
            fields["error"] = run.error or b"null"
        elif status == "timeout":
            fields["status"] = "error"
            fields["error"] = dumps({"error": "TimeoutError", "message": ""})
        elif status == "interrupted":
            fields.setdefault("status", "interrupted")
            fields["error"] = dumps({"error": "UserInterrupt", "message": "the run was cancelled"})
        else:
            fields.setdefault("status", "idle")
            fields["error"] = b"null"
        if any(other is not run and not other.done.is_set() for other in self._queues.get(run.thread_id, ())):
            fields["status"] = "busy"
        await self.storage.update_thread(run.thread_id, **fields)

    # Reading runs

    def thread_busy(self, thread_id: str) -> bool:
        return any(not run.done.is_set() for run in self._queues.get(thread_id, ()))

    def live(self, run_id: str) -> ActiveRun | None:
        return self._runs.get(run_id) or self._finished.get(run_id)

    async def get(self, thread_id: str, run_id: str) -> RunRecord:
        for name, value in (("thread_id", thread_id), ("run_id", run_id)):
            if not is_uuid(value):
                raise InvalidArgument(f"{name} {value!r} is not a UUID")
        run = self.live(run_id)
        if run is not None and run.temporary and run.thread_id == thread_id:
            return run.record
        record = await self.storage.get_run(run_id)
        if record is None or record.thread_id != thread_id:
            raise NotFound(f"Run {run_id} not found on thread {thread_id}.")
        return record

    async def list(self, thread_id: str, *, status: str | None, limit: int, offset: int) -> list[RunRecord]:
        if not is_uuid(thread_id):
            raise InvalidArgument(f"thread_id {thread_id!r} is not a UUID")
        if await self.storage.get_thread(thread_id) is None:
            raise NotFound(f"Thread {thread_id} not found.")
        return await self.storage.list_runs(thread_id, status=status, limit=limit, offset=offset)

    async def events(
        self,
        run: ActiveRun,
        *,
        after: int | None = None,
        modes: Sequence[str] | None = None,
    ) -> AsyncIterator[Sequence[Event]]:
        """Batches of the run's events. `after` is a seq to replay after (None: live only);
        `modes` filters by stream mode as the Agent Server's join does."""
        wanted = _mode_filter(modes)
        if not run.request.stream_resumable:
            async for batch in run.channel.subscribe(after):
                if kept := _filter(batch, wanted):
                    yield kept
            return
        # A resumable run's subscribers never hold it back: what the ring no longer holds
        # comes from the log, then the ring takes over at the next seq, so the cursor hands
        # over without a gap or a duplicate, as often as a slow reader falls behind.
        if after is None:
            after = run.channel.last_seq
        while True:
            while after < run.channel.first_seq() - 1:
                logged = await self._read_log(run.run_id, after)
                if not logged:
                    break
                after = logged[-1].seq
                if kept := _filter(logged, wanted):
                    yield kept
            try:
                async for batch in run.channel.subscribe(after, can_lag=True):
                    after = batch[-1].seq
                    if kept := _filter(batch, wanted):
                        yield kept
                return
            except FellBehind as lag:
                after = lag.cursor

    async def _read_log(self, run_id: str, after: int) -> Sequence[Event]:
        logged = await self.storage.read_events(run_id, after, 1000)
        if logged and logged[0].seq != after + 1:
            raise EventsExpired(
                f"the events of run {run_id} after {after} up to {logged[0].seq - 1} are no longer kept "
                f"(the retention is {self.event_retention:.0f} s)"
            )
        return logged

    async def logged_events(
        self, record: RunRecord, *, after: int, modes: Sequence[str] | None = None
    ) -> AsyncIterator[Sequence[Event]]:
        """A finished run's events from its log (resumable runs only), ending with `end`."""
        wanted = _mode_filter(modes)
        while True:
            logged = await self._read_log(record.run_id, after)
            if not logged:
                return
            after = logged[-1].seq
            if kept := _filter(logged, wanted):
                yield kept

    async def join(self, thread_id: str, run_id: str) -> ActiveRun | RunRecord:
        """The live run if it is in memory (a finished stateless run's records are gone with
        its thread, but it stays joinable while it is), else its stored record."""
        run = self.live(run_id)
        if run is not None and run.thread_id == thread_id:
            return run
        return await self.get(thread_id, run_id)

    async def wait_result(self, run: ActiveRun) -> bytes:
        await run.done.wait()
        if run.error is not None:
            return b'{"__error__":' + run.error + b"}"
        if len(run.interrupt_chunks) == 1:
            return run.interrupt_chunks[0]
        if run.interrupt_chunks:
            interrupts = [i for chunk in run.interrupt_chunks for i in loads(chunk).get("__interrupt__", ())]
            return dumps({"__interrupt__": interrupts})
        if run.last_values is not None:
            return run.last_values
        return await self.stored_result(run.record)

    async def stored_result(self, record: RunRecord) -> bytes:
        thread = await self.storage.get_thread(record.thread_id)
        if thread is None:
            return b"{}"
        if thread.status == "error" and thread.error != b"null":
            return b'{"__error__":' + thread.error + b"}"
        return thread.values if thread.values != b"null" else b"{}"

    async def cancel(self, thread_id: str, run_id: str, *, action: str = "interrupt", wait: bool = False) -> RunRecord:
        if action not in ("interrupt", "rollback"):
            raise InvalidArgument(f"action {action!r} is not one of: interrupt, rollback")
        record = await self.get(thread_id, run_id)
        run = self._runs.get(run_id)
        if run is None or run.done.is_set():
            raise Conflict(f"Run {run_id} is {record.status}, not pending or running: nothing to cancel.")
        await self.cancel_run(run, action)
        if wait:
            await run.done.wait()
        return run.record

    async def cancel_run(self, run: ActiveRun, action: str = "interrupt") -> None:
        if run.done.is_set() or run.cancel_action is not None:
            return
        run.cancel_action = action
        if run.task is None:
            # Still queued: it never starts.
            await self._finish(run, "interrupted")
        else:
            run.task.cancel()

    def cancel_soon(self, run: ActiveRun) -> None:
        """Cancels from a context that must not await (a stream's cleanup after its client left)."""
        if run.done.is_set() or run.cancel_action is not None:
            return
        if run.task is not None:
            run.cancel_action = "interrupt"
            run.task.cancel()
        else:
            task = asyncio.create_task(self.cancel_run(run))
            self._cleanups.add(task)
            task.add_done_callback(self._cleanups.discard)


def _filter(events: Sequence[Event], wanted: frozenset[str] | None) -> Sequence[Event]:
    if wanted is None:
        return events
    return [e for e in events if _base_mode(e.name) in wanted]


def _base_mode(name: str) -> str:
    if name.startswith("messages"):
        return "messages"
    return name


def _mode_filter(modes: Sequence[str] | None) -> frozenset[str] | None:
    if not modes:
        return None
    wanted = {"messages" if m == "messages-tuple" else m for m in modes}
    wanted |= {"metadata", "error", "end"}
    return frozenset(wanted)


def now_ms() -> int:
    return time.time_ns() // 1_000_000
