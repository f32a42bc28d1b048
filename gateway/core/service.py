"""The run core as the edges see it: runs addressed by ids. Create, stream, join, outcome and
cancel are decided here once, for the gRPC servicers, the HTTP routes and the thread streams
alike; the scheduler, the executor and the bus behind it are not the edges' business."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Sequence
from uuid import UUID

from gateway.core.access import Access
from gateway.core.assistants import Assistants
from gateway.core.bus import EventBus
from gateway.core.idempotency import request_key, run_body
from gateway.core.metrics import RUNS_CREATED, OpenStream
from gateway.core.scheduler import Scheduler
from gateway.process import tracing
from gateway.process.metrics import edge
from gateway.shared.errors import BadRequest, Conflict, EventIdUnknown, InvalidArgument, NotFound, shown
from gateway.shared.limits import check_metadata
from gateway.shared.outcome import Outcome
from gateway.shared.records import (
    CANCEL_ACTIONS,
    DURABILITIES,
    MULTITASK_STRATEGIES,
    STREAM_MODES,
    UNFINISHED,
    AssistantRecord,
    CancelAction,
    Event,
    RunCreate,
    RunRecord,
    RunStatus,
    end_event,
    now_iso,
)
from gateway.shared.run_body import check_command, check_input_or_command
from gateway.shared.util import id_part, is_uuid, run_base_ms, uuid7
from gateway.storage import Storage
from gateway.storage.base import AssistantChanged, Repeated

Batches = AsyncIterator[Sequence[Event]]

# Reads of a run's assistant before its creation gives up on one that keeps changing.
_ADMISSION_ATTEMPTS = 3


# The largest seq storage holds: a signed 64-bit integer.
MAX_SEQ = 2**63 - 1
# Our event ids: "<ms>-<seq>" or a bare seq.
_EVENT_ID = re.compile(r"(?:([0-9]+)-)?([0-9]+)")


def parse_event_id(value: str | None, run_id: str | None = None) -> int | None:
    """The seq to replay after, from a Last-Event-ID; None means live only. An id in another
    format than ours is none we issued: as the Agent Server, which replays only ids after it
    and has none after such an id, it follows the run live. With `run_id`, an id of ours of
    another run (its "<ms>" differs) is refused rather than misread."""
    if value is None or value == "":
        return None
    value = value.strip()
    if value in ("-1", "0", "-"):
        return 0
    match = _EVENT_ID.fullmatch(value)
    if match is None:
        return None
    ms, seq = match.groups()
    after = id_part(seq, value, "last_event_id", MAX_SEQ)
    if ms is not None:
        base = id_part(ms, value, "last_event_id", MAX_SEQ)
        if run_id is not None and base != run_base_ms(run_id):
            raise EventIdUnknown(
                f"last_event_id {shown(value)} is an event id of another run than {run_id}",
                field="last_event_id",
                metadata={"run_id": run_id},
            )
    return after


def check_ids(thread_id: str | None, run_id: str) -> None:
    if thread_id is not None and not is_uuid(thread_id):
        raise InvalidArgument(f"thread_id {shown(thread_id)} is not a UUID", field="thread_id")
    if not is_uuid(run_id):
        raise InvalidArgument(f"run_id {shown(run_id)} is not a UUID", field="run_id")


def mode_filter(modes: Sequence[str] | None) -> frozenset[str] | None:
    """The event names a join with `stream_mode` keeps, as the Agent Server's join filters."""
    if not modes:
        return None
    wanted = {"messages" if m == "messages-tuple" else m for m in modes}
    wanted |= {"metadata", "error", "end"}
    return frozenset(wanted)


def _kept(events: Sequence[Event], wanted: frozenset[str] | None) -> Sequence[Event]:
    if wanted is None:
        return events
    return [e for e in events if ("messages" if e.name.startswith("messages") else e.name) in wanted]


def _span_ids(record: RunRecord) -> dict[str, str]:
    return {
        "langgraph.run.id": record.run_id,
        "langgraph.thread.id": record.thread_id,
        "langgraph.assistant.id": record.assistant_id,
    }


def validate(req: RunCreate) -> None:
    if not req.assistant_id:
        raise InvalidArgument("assistant_id is required")
    check_metadata("metadata", req.metadata)
    for mode in req.stream_mode:
        if mode not in STREAM_MODES:
            raise InvalidArgument(f"stream_mode {shown(mode)} is not one of: {', '.join(STREAM_MODES)}")
    if req.multitask_strategy not in MULTITASK_STRATEGIES:
        raise InvalidArgument(
            f"multitask_strategy {shown(req.multitask_strategy)} is not one of: {', '.join(MULTITASK_STRATEGIES)}"
        )
    if req.on_disconnect not in ("cancel", "continue"):
        raise InvalidArgument(f"on_disconnect {shown(req.on_disconnect)} is not one of: cancel, continue")
    if req.if_not_exists not in ("create", "reject"):
        raise InvalidArgument(f"if_not_exists {shown(req.if_not_exists)} is not one of: create, reject")
    if req.durability not in DURABILITIES:
        raise InvalidArgument(f"durability {shown(req.durability)} is not one of: {', '.join(DURABILITIES)}")
    for name in ("interrupt_before", "interrupt_after"):
        value = getattr(req, name)
        if isinstance(value, str) and value != "*":
            raise InvalidArgument(f'{name} must be "*" or a list of node names')
    if req.checkpoint_id is not None and not is_uuid(req.checkpoint_id):
        raise InvalidArgument(f"checkpoint_id {shown(req.checkpoint_id)}: Invalid checkpoint ID")
    limit = req.config.get("recursion_limit")
    if isinstance(limit, int | float) and not isinstance(limit, bool) and limit < 1:
        # LangGraph refuses it too, but only once the run has started, as an error event.
        raise InvalidArgument(
            f"config.recursion_limit must be at least 1, not {limit:g}", field="config.recursion_limit"
        )
    configurable = req.config.get("configurable")
    if configurable is not None and not isinstance(configurable, dict):
        raise InvalidArgument("config.configurable must be an object")
    if configurable and req.context:
        raise BadRequest(
            "Cannot specify both configurable and context. Prefer setting context alone. Context was "
            "introduced in LangGraph 0.6.0 and is the long term planned replacement for configurable."
        )
    if req.thread_id is not None and not is_uuid(req.thread_id):
        raise InvalidArgument(f"thread_id {shown(req.thread_id)} is not a UUID", field="thread_id")
    req.command = check_command(req.command)
    check_input_or_command(req.input, req.command)
    if req.thread_id is None and req.command and "resume" in req.command:
        raise BadRequest("You must provide a thread_id when resuming.", field="thread_id")


def _take_assistant_config(req: RunCreate, assistant: AssistantRecord) -> None:
    """The run takes its assistant's config and context (the latest version's, now), under its
    own, as the Agent Server's runs do."""
    if assistant.config:
        configurable = {**(assistant.config.get("configurable") or {}), **(req.config.get("configurable") or {})}
        req.config = {**assistant.config, **req.config}
        if configurable:
            req.config["configurable"] = configurable
    if assistant.context:
        req.context = {**assistant.context, **req.context}


def _kwargs(req: RunCreate) -> dict[str, object]:
    # The run's `kwargs` as the Agent Server shows them.
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
        "temporary": req.temporary,
        "subgraphs": req.stream_subgraphs,
        "resumable": req.stream_resumable,
        "checkpoint_during": req.durability != "exit",
        "durability": req.durability,
    }


class RunService:
    def __init__(
        self,
        storage: Storage,
        bus: EventBus,
        scheduler: Scheduler,
        assistants: Assistants,
        *,
        access: Access | None = None,
        idempotency_window: float = 86_400.0,
    ) -> None:
        self._storage = storage
        self._access = access or Access(None, storage)
        self._idempotency_window = idempotency_window
        self._bus = bus
        self._scheduler = scheduler
        self._assistants = assistants

    # Creating runs

    async def create(self, req: RunCreate) -> RunRecord:
        return await self._admit(req)

    async def _admit(self, req: RunCreate) -> RunRecord:
        """The run made for `req`; for a repeat of a request with a request_id, the run the
        first call made (its caller follows it as it would its own)."""
        validate(req)
        key = request_key(req.request_id, "run", run_body(req), self._idempotency_window)
        config, context = req.config, req.context
        thread_id = req.thread_id
        if thread_id is None:
            # A stateless run: its own new thread, created with the run unless it is temporary.
            thread_id = uuid7()
            req.if_not_exists = "create"
        for attempt in range(_ADMISSION_ATTEMPTS):
            # The assistant as this process last read it (its admission checks that it is still
            # so, in the same step: no read of its own), then, if it has changed, as stored now.
            assistant, spec = await self._assistants.resolve(req.assistant_id, recent=attempt == 0)
            req.config, req.context = config, context
            _take_assistant_config(req, assistant)
            now = now_iso()
            record = RunRecord(
                run_id=uuid7(),
                thread_id=thread_id,
                assistant_id=assistant.assistant_id,
                created_at=now,
                updated_at=now,
                status="pending",
                metadata={**req.metadata, "graph_id": spec.graph_id, "assistant_id": assistant.assistant_id},
                multitask_strategy=req.multitask_strategy,
                kwargs=_kwargs(req),
            )
            access = await self._access.create_run(req, record, assistant)
            try:
                admitted = await self._scheduler.admit(
                    record, req, spec, access=access, assistant=assistant, request_key=key
                )
            except AssistantChanged:
                self._assistants.forget(assistant.assistant_id)
                continue
            except Repeated as repeat:
                return await self._repeated(repeat, req.request_id)
            RUNS_CREATED.labels(spec.graph_id, edge.get()).inc()
            tracing.annotate(_span_ids(admitted))
            return admitted
        raise Conflict(f"Assistant {req.assistant_id} kept changing while the run was created; try again.")

    async def _repeated(self, repeat: Repeated, request_id: str | None) -> RunRecord:
        try:
            # Made by this caller (the key is the caller's): no other check to pass.
            record = await self._find(repeat.thread_id, repeat.resource_id)
        except NotFound:
            raise NotFound(
                f"Run {repeat.resource_id}, which request_id {request_id} created, no longer exists.",
                resource="run",
                id=repeat.resource_id,
                metadata={"request_id": str(request_id)},
            ) from None
        tracing.annotate(_span_ids(record))
        return record

    async def stream(self, req: RunCreate) -> tuple[RunRecord, Batches]:
        """Creates the run and streams it from its first event."""
        record = await self._admit(req)
        return record, self._events(record, 0, None, cancel=req.on_disconnect == "cancel", kind="run")

    async def wait(self, req: RunCreate) -> tuple[RunRecord, asyncio.Future[bytes]]:
        """Creates the run; the future is its outcome (cancelling it cancels the run when the
        request says on_disconnect=cancel)."""
        record = await self._admit(req)
        return record, asyncio.ensure_future(self._outcome(record, cancel=req.on_disconnect == "cancel"))

    async def create_batch(self, requests: Sequence[RunCreate]) -> list[RunRecord]:
        """Background runs, each stateless on a thread of its own, created in order once all of
        them are valid."""
        for req in requests:
            validate(req)
        return [await self._admit(req) for req in requests]

    # Finding runs

    async def find(self, thread_id: str | None, run_id: str, *, cancel: CancelAction | None = None) -> RunRecord:
        """The run, if the caller may read it (or, with `cancel`, cancel it)."""
        check_ids(thread_id, run_id)
        access = await self._access.run(thread_id, run_id, cancel=cancel)
        record = await self._find(thread_id, run_id)
        await self._access.check_run(record, access, thread_id)
        tracing.annotate(_span_ids(record))
        return record

    async def _find(self, thread_id: str | None, run_id: str) -> RunRecord:
        """The run, whether queued, running or ended. A stateless run (thread_id None) is found
        while it is stored, then while this process remembers it: its record goes with its
        temporary thread when it ends."""
        check_ids(thread_id, run_id)
        live = self._scheduler.live(run_id)
        if live is not None and thread_id in (None, live.thread_id):
            return live.record
        finished = self._scheduler.finished(run_id)
        if finished is not None and thread_id in (None, finished.record.thread_id):
            return finished.record
        record = await self._storage.get_run(run_id)
        if record is not None and thread_id in (None, record.thread_id):
            # Without a thread id, only a stateless run is found: its temporary thread and
            # record are stored until it ends.
            if thread_id is not None or record.kwargs.get("temporary"):
                return record
        if thread_id is not None:
            raise NotFound(
                f"Run {run_id} not found on thread {thread_id}.",
                resource="run",
                id=run_id,
                metadata={"thread_id": thread_id},
            )
        raise NotFound(f"Run {run_id} not found.", resource="run", id=run_id)

    async def ended(self, run_id: str) -> bool:
        """Whether a run this process does not hold has ended (or is gone)."""
        if self._scheduler.live(run_id) is not None:
            return False
        record = await self._storage.get_run(run_id)
        return record is None or record.status not in UNFINISHED

    async def get(self, thread_id: str, run_id: str) -> RunRecord:
        return await self.find(thread_id, run_id)

    async def list(self, thread_id: str, *, status: RunStatus | None, limit: int, offset: int) -> list[RunRecord]:
        if not is_uuid(thread_id):
            raise InvalidArgument(f"thread_id {shown(thread_id)} is not a UUID", field="thread_id")
        access = await self._access.check("threads", "read", {"thread_id": UUID(thread_id)})
        if await self._storage.get_thread(thread_id, access=access) is None:
            raise NotFound(f"Thread {thread_id} not found.", resource="thread", id=thread_id)
        value = {"thread_id": UUID(thread_id), "metadata": {}}
        access = await self._access.check("threads", "search", value)
        return await self._storage.list_runs(thread_id, status=status, limit=limit, offset=offset, access=access)

    # Reading runs

    async def join(
        self,
        thread_id: str | None,
        run_id: str,
        *,
        last_event_id: str | None = None,
        modes: Sequence[str] | None = None,
        cancel_on_disconnect: bool = False,
    ) -> tuple[RunRecord, Batches]:
        """The run's events after `last_event_id` (none: from now on), live while it runs,
        then its end; a run that ended and whose events are gone yields its end only."""
        parse_event_id(last_event_id)  # an id out of range fails before the lookup
        record = await self.find(thread_id, run_id)
        after = parse_event_id(last_event_id, run_id)
        if after is not None and record.resumable:
            await self._bus.check_replay(run_id, after)
        return record, self._events(record, after, modes, cancel=cancel_on_disconnect, kind="join")

    def events(self, run_id: str, after: int | None, *, on_drop: Callable[[], None] | None = None) -> Batches:
        """Every event of a run after `after`, as the bus has them (thread streams read this)."""
        return self._bus.events(run_id, after=after, on_drop=on_drop)

    async def last_seq(self, run_id: str) -> int:
        return await self._bus.last_seq(run_id)

    async def _events(
        self, record: RunRecord, after: int | None, modes: Sequence[str] | None, *, cancel: bool, kind: str
    ) -> Batches:
        wanted = mode_filter(modes)
        completed = False
        stream = OpenStream(kind)
        try:
            await self._scheduler.taken(record)
            ended = False
            async for batch in self._bus.events(record.run_id, after=after, logged=record.resumable, paced=True):
                ended = batch[-1].name == "end"
                if kept := _kept(batch, wanted):
                    yield kept
                    stream.delivered(kept)
                if ended:
                    # Nothing follows `end`: the stream ends now, not once the run's writer has
                    # also closed (on a shared log, after its last write to it).
                    break
            if not ended:
                # The bus holds nothing more of the run: it ended. Say how, without an id.
                final = [end_event(await self._final_status(record))]
                yield final
                stream.delivered(final)
            completed = True
        finally:
            stream.close()
            # A reader that stops before the end is a client that left.
            if cancel and not completed:
                self.cancel_soon(record.run_id)

    async def _final_status(self, record: RunRecord) -> str:
        live = self._scheduler.live(record.run_id)
        if live is not None:
            await live.done.wait()
            return live.record.status
        finished = self._scheduler.finished(record.run_id)
        if finished is not None:
            return finished.record.status
        stored = await self._storage.get_run(record.run_id)
        return (stored or record).status

    async def outcome(self, thread_id: str | None, run_id: str, *, cancel_on_disconnect: bool = False) -> bytes:
        """What `/join` answers: the run's error, interrupts or final values, once it ended."""
        return await self._outcome(await self.find(thread_id, run_id), cancel=cancel_on_disconnect)

    async def _outcome(self, record: RunRecord, *, cancel: bool) -> bytes:
        try:
            result = await self._result(record)
        except asyncio.CancelledError:
            if cancel:
                self.cancel_soon(record.run_id)
            raise
        return result if result is not None else await self._stored_result(record.thread_id)

    async def _result(self, record: RunRecord) -> bytes | None:
        await self._scheduler.taken(record)
        live = self._scheduler.live(record.run_id)
        if live is not None:
            await live.done.wait()
            return live.outcome.result()
        finished = self._scheduler.finished(record.run_id)
        if finished is not None:
            return finished.result
        # Executed elsewhere, or before this process started: told by its events.
        outcome = Outcome()
        async for batch in self._bus.events(record.run_id, after=0):
            for event in batch:
                outcome.add(event.name, event.ns, event.data)
        return outcome.result()

    async def _stored_result(self, thread_id: str) -> bytes:
        thread = await self._storage.get_thread(thread_id)
        if thread is None:
            return b"{}"
        if thread.status == "error" and thread.error != b"null":
            return b'{"__error__":' + thread.error + b"}"
        return thread.values if thread.values != b"null" else b"{}"

    # Cancelling runs

    async def cancel(
        self, thread_id: str, run_id: str, *, action: CancelAction = "interrupt", wait: bool = False
    ) -> RunRecord:
        if action not in CANCEL_ACTIONS:
            raise InvalidArgument(f"action {shown(action)} is not one of: {', '.join(CANCEL_ACTIONS)}")
        record = await self.find(thread_id, run_id, cancel=action)
        live = self._scheduler.live(run_id)
        if live is not None and live.done.is_set() or record.status not in UNFINISHED:
            raise Conflict(f"Run {run_id} is {record.status}, not pending or running: nothing to cancel.")
        await self._scheduler.cancel(run_id, action)
        if wait:
            await self._result(record)
            if live is None:
                return await self._storage.get_run(run_id) or record
        return record

    async def cancel_many(
        self,
        *,
        thread_id: str | None = None,
        run_ids: Sequence[str] | None = None,
        statuses: Sequence[RunStatus] = (),
        action: CancelAction = "interrupt",
    ) -> int:
        """Cancels the runs with one of `statuses`, or the given runs of a thread; returns how
        many were found (a run that ended meanwhile counts). NotFound when ids found none."""
        if statuses:
            label = "all" if len(statuses) > 1 else statuses[0]
            metadata = {"run_ids": None, "status": label}
            value = {"thread_id": None, "action": action, "metadata": metadata}
            access = await self._access.check("threads", "update", value)
            found_runs = await self._storage.runs_with_status(statuses, access=access)
            targets = [(r.thread_id, r.run_id) for r in found_runs]
        else:
            assert thread_id is not None and run_ids is not None
            for run_id in run_ids:
                check_ids(thread_id, run_id)
            targets = [(thread_id, run_id) for run_id in run_ids]
        found = 0
        for tid, rid in targets:
            try:
                await self.cancel(tid, rid, action=action)
                found += 1
            except Conflict:
                found += 1  # it ended meanwhile
            except NotFound:
                pass
        if targets and not found and not statuses:
            raise NotFound(
                f"No runs found to cancel: {shown(', '.join(run_ids or ()))} on thread {thread_id}.",
                resource="run",
                metadata={"thread_id": thread_id} if thread_id else None,
            )
        return found

    # Deleting runs

    async def delete(self, thread_id: str, run_id: str) -> None:
        """Deletes a run with its events and the checkpoints it wrote; one that has not ended
        is cancelled first, as the Agent Server deletes it too."""
        check_ids(thread_id, run_id)
        access = await self._access.check("threads", "delete", {"thread_id": UUID(thread_id), "run_id": UUID(run_id)})
        deleted = None
        for attempt in range(3):
            try:
                deleted = await self._storage.delete_run(thread_id, run_id, access=access)
                break
            except Conflict:
                if attempt == 2:
                    raise
                await self._scheduler.cancel(run_id, "interrupt")
                record = await self._storage.get_run(run_id)
                if record is not None:
                    await self._result(record)
        if deleted is None:
            raise NotFound(
                f"Run {run_id} not found on thread {thread_id}.",
                resource="run",
                id=run_id,
                metadata={"thread_id": thread_id},
            )
        await self._storage.delete_run_checkpoints(thread_id, run_id)
        self._scheduler.forget_run(run_id)
        await self._bus.forget([run_id])

    def cancel_soon(self, run_id: str) -> None:
        self._scheduler.cancel_soon(run_id)
