"""The thread protocol over the run core: its commands (start a run, answer an interrupt, cancel,
the agent tree) and its event stream, every run of a thread told as protocol events
(gateway.core.protocol_events), runs created later included.

Seqs. Every protocol event of a thread has a seq that is the same on every connection, so that
a client resumes with `since` wherever it reconnects: a run's events are numbered from
`(run's UUIDv7 millisecond - thread's creation millisecond) << 20`, one per protocol event the
translation gives, in the run's order (and after the previous run's last, should two runs share
a millisecond). A resume therefore skips whole runs without reading them, and the reply to the
command that starts a run says the seq just before that run's first event.

Following a thread. Runs of a thread execute one at a time, in the order they were created;
the stream reads them in that order, each from its first event. A reader is attached to every
run as it is admitted (through Scheduler.on_admitted), with a bounded queue: a run without a
log keeps its events in a ring that drops what no reader holds, so its reader holds it back
while the client lags, as every reader of it does (the bus's stall timeout then detaches it);
a run with a log (the protocol's own) is never held back, and what its reader could not keep
comes from the log. A stream one of whose readers was detached leaves the thread at once, so
that it holds back no later run, and ends with SubscriberTooSlow where its client reads up to
it. A stream leaves the thread when its session closes, however the transport ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from weakref import WeakKeyDictionary

import orjson

from gateway.core.metrics import SUBSCRIPTIONS, OpenStream
from gateway.core.protocol_events import RunTranslator
from gateway.core.scheduler import Scheduler
from gateway.core.service import RunService
from gateway.core.threads import Threads
from gateway.shared.errors import Conflict, GatewayError, InvalidArgument, NotFound, SubscriberTooSlow
from gateway.shared.protocol import (
    METHODS,
    CancelRun,
    Command,
    Filter,
    Frame,
    GetTree,
    InputRespond,
    ProtocolError,
    RecentIds,
    RunStart,
    SessionFailed,
    Subscribe,
    Unsubscribe,
    error_code,
    failure,
    session_only,
    success,
)
from gateway.shared.records import UNFINISHED, Event, RunCreate, RunRecord, ThreadRecord
from gateway.shared.util import cancel_for_good, run_base_ms, within

if TYPE_CHECKING:
    from gateway.core.gateway import Gateway

logger = logging.getLogger("gateway.protocol")

# What a protocol run streams: every mode the protocol has a channel for, with subgraphs, kept
# in the log so that any connection can replay it.
PROTOCOL_MODES = ["values", "updates", "messages-tuple", "custom", "tasks", "checkpoints", "tools"]
SEQ_BITS = 20
_PAGE = 1000
# Batches a reader attached to a run without a log holds before it holds the run back.
_PRIMED_BATCHES = 16
_OUTBOUND = 64
# Seconds between looks at the thread's newest runs, should a signal of an admission from
# another process be lost.
_POLL = 5.0
_DRAIN_POLL = 0.05


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def run_block(run_id: str, thread_created_ms: int) -> int:
    """The seq after which a run's events are numbered (unless the run before it overran it)."""
    return max(0, run_base_ms(run_id) - thread_created_ms) << SEQ_BITS


def _graph_name(record: RunRecord) -> str:
    return str(record.metadata.get("graph_id") or record.assistant_id)


class _Primed:
    """A reader attached to a run without a log when it was admitted."""

    def __init__(self, runs: RunService, run_id: str, failed: Callable[[Exception], None]) -> None:
        self.queue: asyncio.Queue[Sequence[Event] | BaseException | None] = asyncio.Queue(_PRIMED_BATCHES)
        self.task = asyncio.create_task(self._read(runs, run_id, failed), name=f"protocol-prime-{run_id}")

    async def _read(self, runs: RunService, run_id: str, failed: Callable[[Exception], None]) -> None:
        def dropped() -> None:
            # Told while this reader waits for room in its queue, long before it reads again
            # and gets the error from the ring.
            failed(SubscriberTooSlow(f"the thread's stream held run {run_id} back and was detached"))

        try:
            # Closed here, so that a reader cancelled leaves the run's ring at once.
            events = cast(AsyncGenerator[Sequence[Event]], runs.events(run_id, 0, on_drop=dropped))
            async with contextlib.aclosing(events) as batches:
                async for batch in batches:
                    await self.queue.put(batch)
        except Exception as exc:
            failed(exc)
            await self.queue.put(exc)
        await self.queue.put(None)

    async def batches(self) -> AsyncIterator[Sequence[Event]]:
        while (item := await self.queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item


class _Feed:
    """The runs admitted to one thread while a stream follows it, each with a reader attached
    from its admission (a run with a log does not wait for it, one without does)."""

    def __init__(self, runs: RunService, detach: Callable[[_Feed], None]) -> None:
        self._runs = runs
        self._detach = detach
        self.admitted: deque[str] = deque()
        self.primed: dict[str, _Primed] = {}
        self.wake = asyncio.Event()
        self.failure: Exception | None = None
        # The stream's "nothing left to send" (Session.drain waits for it): cleared the moment a
        # run is admitted, not once the stream gets to it, or a drain could end before it.
        self.idle: asyncio.Event | None = None

    def add(self, run_id: str) -> None:
        self.admitted.append(run_id)
        self.prime(run_id)
        if self.idle is not None:
            self.idle.clear()
        self.wake.set()

    def prime(self, run_id: str) -> None:
        if run_id not in self.primed and self.failure is None:
            self.primed[run_id] = _Primed(self._runs, run_id, self._failed)

    def _failed(self, exc: Exception) -> None:
        """One of its readers was detached (it held its run back) or failed: the stream ends
        with that at the next run it reads, and until then holds back no run."""
        if self.failure is not None:
            return
        self.failure = exc
        self._detach(self)
        self.wake.set()
        # The stream ends before it reads any of these (the run being read is not among them).
        for primed in self.primed.values():
            primed.task.cancel()

    async def close(self) -> None:
        tasks = [p.task for p in self.primed.values()]
        cancel_for_good(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class _Position:
    """Where a stream stands: the last seq numbered, the catch-up point, and whether it waits
    for a run to be created (idle)."""

    last: int = 0
    caught_up: asyncio.Event | None = None
    target: tuple[str, int | None] | None = None
    idle: asyncio.Event | None = None
    finished: Callable[[str], None] | None = None

    def reached(self, run_id: str, seq: int | None) -> None:
        """`seq` None: the run's events ended."""
        if self.caught_up is None or self.caught_up.is_set() or self.target is None:
            return
        target_run, target_seq = self.target
        if run_id == target_run and (seq is None or (target_seq is not None and seq >= target_seq)):
            self.caught_up.set()

    def done(self) -> None:
        if self.caught_up is not None:
            self.caught_up.set()

    def resting(self, yes: bool) -> None:
        if self.idle is not None:
            if yes:
                self.idle.set()
            else:
                self.idle.clear()


class ThreadProtocol:
    def __init__(self, runs: RunService, threads: Threads, scheduler: Scheduler, *, distributed: bool = False) -> None:
        self._runs = runs
        self._threads = threads
        self._feeds: dict[str, set[_Feed]] = {}
        # One process sees every admission; several signal them to each other, not reliably.
        self._poll = _POLL if distributed else None
        scheduler.on_admitted(self._admitted)

    @classmethod
    def of(cls, gateway: Gateway) -> ThreadProtocol:
        """The gateway's one instance, shared by its edges."""
        protocol = _INSTANCES.get(gateway)
        if protocol is None:
            protocol = _INSTANCES[gateway] = cls(
                gateway.runs, gateway.threads, gateway.scheduler, distributed=gateway.settings.distributed
            )
        return protocol

    def _admitted(self, thread_id: str, run_id: str) -> None:
        for feed in self._feeds.get(thread_id, ()):
            feed.add(run_id)

    async def session(self, thread_id: str, *, dedupe: bool) -> Session:
        """A session on a thread the caller may see, or one not created yet."""
        await self.visible(thread_id)
        return Session(self, thread_id, dedupe=dedupe)

    # Commands

    async def execute(self, thread_id: str, command: Command) -> dict[str, Any]:
        """A command that needs no session (HTTP): its reply, success or error."""
        body = command.body
        try:
            if (refused := session_only(thread_id, body)) is not None:
                raise refused
            result, applied = await self._run_command(thread_id, body)
            return success(command.id, result, applied)
        except ProtocolError as exc:
            return failure(command.id, exc.code, exc.message)
        except GatewayError as exc:
            return failure(command.id, error_code(exc), exc.message)

    async def _run_command(self, thread_id: str, body: Any) -> tuple[dict[str, Any], int]:
        if isinstance(body, RunStart):
            return await self.start_run(thread_id, body)
        if isinstance(body, InputRespond):
            return await self.respond(thread_id, body)
        if isinstance(body, CancelRun):
            return await self.cancel(thread_id, body), 0
        if isinstance(body, GetTree):
            return await self.tree(thread_id, body.run_id), 0
        raise ProtocolError("unknown_command", f"Unknown protocol command: {type(body).__name__}")

    def _request(self, thread_id: str, assistant_id: str, config: dict[str, Any], **fields: Any) -> RunCreate:
        config = dict(config)
        configurable = config.get("configurable")
        checkpoint_id = None
        if isinstance(configurable, dict) and "checkpoint_id" in configurable:
            # A fork: the run starts from that checkpoint of the thread.
            configurable = dict(configurable)
            checkpoint_id = configurable.pop("checkpoint_id")
            if not isinstance(checkpoint_id, str) or not checkpoint_id:
                raise InvalidArgument("config.configurable.checkpoint_id must be a non-empty string")
            config["configurable"] = configurable
        return RunCreate(
            assistant_id=assistant_id,
            thread_id=thread_id,
            config=config,
            stream_mode=list(PROTOCOL_MODES),
            stream_subgraphs=True,
            stream_resumable=True,
            if_not_exists="create",
            on_completion="keep",
            checkpoint_id=checkpoint_id,
            **fields,
        )

    async def _started(self, record: RunRecord) -> tuple[dict[str, Any], int]:
        thread = await self._threads.get(record.thread_id)
        return {"run_id": record.run_id}, run_block(record.run_id, _ms(thread.created_at))

    async def start_run(self, thread_id: str, body: RunStart) -> tuple[dict[str, Any], int]:
        req = self._request(
            thread_id,
            body.assistant_id,
            body.config,
            input=body.input,
            metadata=body.metadata,
            multitask_strategy=body.multitask_strategy or "enqueue",
        )
        return await self._started(await self._runs.create(req))

    async def _pending_interrupts(self, thread_id: str) -> tuple[ThreadRecord, set[str]]:
        thread = await self._threads.get(thread_id)
        if thread.status == "busy":
            # An interrupt reaches clients before its run has ended and stored it: wait for that.
            for run in await self._runs.list(thread_id, status="running", limit=10, offset=0):
                with contextlib.suppress(GatewayError):
                    await self._runs.outcome(thread_id, run.run_id)
            thread = await self._threads.get(thread_id)
        interrupts = orjson.loads(thread.interrupts) if thread.interrupts else {}
        ids = set()
        for entries in interrupts.values() if isinstance(interrupts, dict) else ():
            for entry in entries if isinstance(entries, list) else ():
                if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                    ids.add(entry["id"])
        return thread, ids

    async def respond(self, thread_id: str, body: InputRespond) -> tuple[dict[str, Any], int]:
        thread, pending = await self._pending_interrupts(thread_id)
        for response in body.responses:
            if response.interrupt_id not in pending:
                raise ProtocolError(
                    "no_such_interrupt", f"Unknown or already-answered interrupt: {response.interrupt_id}"
                )
        assistant_id = thread.metadata.get("assistant_id")
        if not isinstance(assistant_id, str):
            latest = await self._runs.list(thread_id, status=None, limit=1, offset=0)
            if not latest:
                raise ProtocolError("no_such_run", f"Thread {thread_id} has no run to resume.")
            assistant_id = latest[0].assistant_id
        command: dict[str, Any] = {"resume": {r.interrupt_id: r.response for r in body.responses}}
        if body.update is not None:
            command["update"] = body.update
        if body.goto is not None:
            command["goto"] = body.goto
        req = self._request(thread_id, assistant_id, body.config, command=command, metadata=body.metadata)
        return await self._started(await self._runs.create(req))

    async def cancel(self, thread_id: str, body: CancelRun) -> dict[str, Any]:
        if body.run_id is not None:
            await self._runs.cancel(thread_id, body.run_id, action=body.action)
            return {"run_ids": [body.run_id]}
        cancelled = []
        for status in UNFINISHED:
            for run in await self._runs.list(thread_id, status=status, limit=_PAGE, offset=0):
                with contextlib.suppress(Conflict):
                    await self._runs.cancel(thread_id, run.run_id, action=body.action)
                    cancelled.append(run.run_id)
        if not cancelled:
            raise ProtocolError("no_such_run", f"Thread {thread_id} has no pending or running run.")
        return {"run_ids": cancelled}

    async def busy(self, thread_id: str) -> bool:
        """Whether the thread has a pending or running run (one not created yet has none)."""
        try:
            for status in UNFINISHED:
                if await self._runs.list(thread_id, status=status, limit=1, offset=0):
                    return True
        except NotFound:
            return False
        return False

    async def newest(self, thread_id: str) -> str | None:
        """The id of the thread's newest run (None: it has none, or does not exist yet)."""
        try:
            latest = await self._runs.list(thread_id, status=None, limit=1, offset=0)
        except NotFound:
            return None
        return latest[0].run_id if latest else None

    async def tree(self, thread_id: str, run_id: str | None) -> dict[str, Any]:
        if run_id is not None:
            record = await self._runs.find(thread_id, run_id)
        else:
            latest = await self._runs.list(thread_id, status=None, limit=1, offset=0)
            if not latest:
                raise ProtocolError("no_such_run", f"Thread {thread_id} has no run.")
            record = latest[0]
        translator = RunTranslator(_graph_name(record))
        # What the run published so far: a live run is not waited for.
        last = await self._runs.last_seq(record.run_id)
        if record.status in UNFINISHED and last == 0:
            return {"tree": translator.tree()}
        async for batch in self._runs.events(record.run_id, 0):
            for event in batch:
                translator.feed(event)
            if record.status in UNFINISHED and batch[-1].seq >= last:
                break
        return {"tree": translator.tree()}

    # Events

    async def visible(self, thread_id: str) -> None:
        """NotFound for a thread that exists but the caller may not read, worded as for one that
        does not exist; a thread not created yet is not refused (a stream may open before the
        run.start that creates it)."""
        try:
            await self._threads.get(thread_id)
        except NotFound:
            if await self._threads.storage.get_thread(thread_id) is not None:
                raise

    async def _thread(self, thread_id: str, feed: _Feed, position: _Position) -> ThreadRecord:
        while True:
            feed.wake.clear()
            try:
                return await self._threads.get(thread_id)
            except NotFound:
                # Created meanwhile by a caller who may see it, but not by this one.
                await self.visible(thread_id)
            # A stream may open before the run.start that creates its thread: it has nothing to
            # catch up on, and waits for the thread's first run.
            position.done()
            position.resting(True)
            await feed.wake.wait()

    async def _listed(self, thread_id: str) -> list[RunRecord]:
        runs: list[RunRecord] = []
        while True:
            page = await self._runs.list(thread_id, status=None, limit=_PAGE, offset=len(runs))
            runs.extend(page)
            if len(page) < _PAGE:
                break
        runs.reverse()
        return runs

    async def events(
        self,
        thread_id: str,
        wanted: Filter,
        *,
        since: int | None = None,
        caught_up: asyncio.Event | None = None,
        idle: asyncio.Event | None = None,
        subscription_id: str = "",
        finished: Callable[[str], None] | None = None,
    ) -> AsyncGenerator[list[Frame]]:
        """The thread's protocol events that `wanted` takes, after `since` (none: from the
        thread's first run), live and replayed alike; never ends on its own. `caught_up` is set
        once what the thread had when the stream opened has gone by; `finished` is told each
        run whose events have all gone by."""
        feed = _Feed(self._runs, lambda gone: self._detach(thread_id, gone))
        self._feeds.setdefault(thread_id, set()).add(feed)
        SUBSCRIPTIONS.inc()
        position = _Position(caught_up=caught_up, idle=idle, finished=finished)
        feed.idle = idle
        try:
            thread = await self._thread(thread_id, feed, position)
            created = _ms(thread.created_at)
            listed = await self._listed(thread_id)
            start = 0
            if since is not None:
                for i, record in enumerate(listed):
                    if run_block(record.run_id, created) <= since:
                        start = i
                while start > 0 and run_base_ms(listed[start - 1].run_id) == run_base_ms(listed[start].run_id):
                    start -= 1
            for record in listed:
                if record.status in UNFINISHED:
                    feed.prime(record.run_id)
            if listed:
                last = listed[-1]
                unfinished = last.status in UNFINISHED
                position.target = (last.run_id, await self._runs.last_seq(last.run_id) if unfinished else None)
            else:
                position.done()
            seen = set()
            latest = ""
            for record in listed[start:]:
                seen.add(record.run_id)
                latest = record.run_id
                async for frames in self._run(record, created, feed, position, wanted, since, subscription_id):
                    yield frames
            while True:
                if feed.failure is not None:
                    raise feed.failure
                position.done()
                feed.wake.clear()
                while feed.admitted:
                    position.resting(False)
                    run_id = feed.admitted.popleft()
                    if run_id in seen:
                        continue
                    seen.add(run_id)
                    try:
                        record = await self._runs.find(thread_id, run_id)
                    except NotFound:
                        continue  # rolled back, or its thread deleted
                    latest = max(latest, run_id)
                    async for frames in self._run(record, created, feed, position, wanted, since, subscription_id):
                        yield frames
                position.resting(True)
                with contextlib.suppress(TimeoutError):
                    await within(self._poll, feed.wake.wait())
                if not feed.wake.is_set():
                    # Admissions in other processes come as signals, which may be lost: the
                    # thread's newest runs say what was missed.
                    newest = await self._runs.list(thread_id, status=None, limit=10, offset=0)
                    for record in reversed(newest):
                        if record.run_id not in seen and record.run_id > latest:
                            feed.add(record.run_id)
        finally:
            self._detach(thread_id, feed)
            await feed.close()

    def _detach(self, thread_id: str, feed: _Feed) -> None:
        feeds = self._feeds.get(thread_id)
        if feeds is not None and feed in feeds:
            feeds.discard(feed)
            SUBSCRIPTIONS.dec()
            if not feeds:
                del self._feeds[thread_id]

    async def _run(
        self,
        record: RunRecord,
        created: int,
        feed: _Feed,
        position: _Position,
        wanted: Filter,
        since: int | None,
        subscription_id: str,
    ) -> AsyncIterator[list[Frame]]:
        run_id = record.run_id
        translator = RunTranslator(_graph_name(record))
        seq = max(run_block(run_id, created), position.last)
        if position.target is not None and position.target[0] == run_id and position.target[1] == 0:
            position.reached(run_id, 0)
        primed = feed.primed.pop(run_id, None)
        if feed.failure is not None:
            raise feed.failure
        batches = primed.batches() if primed is not None else self._runs.events(run_id, 0)
        wants_custom_names = any(c.startswith("custom:") for c in wanted.channels)
        try:
            async for batch in batches:
                frames: list[Frame] = []
                now = int(time.time() * 1000)
                for event in batch:
                    for method, ns, data, node in translator.feed(event):
                        seq += 1
                        if since is not None and seq <= since:
                            continue
                        channel = METHODS[method]
                        name = _custom_name(data) if channel == "custom" and wants_custom_names else None
                        if wanted.wants(channel, name) and wanted.covers(ns):
                            frames.append(Frame(seq, method, ns, now, data, node, subscription_id))
                position.last = seq
                if frames:
                    yield frames
                position.reached(run_id, batch[-1].seq if batch else 0)
        finally:
            if primed is not None:
                primed.task.cancel()
        position.last = seq
        position.reached(run_id, None)
        if position.finished is not None:
            position.finished(run_id)


_INSTANCES: WeakKeyDictionary[Any, ThreadProtocol] = WeakKeyDictionary()


def _custom_name(data: bytes) -> str | None:
    if not data.startswith(b'{"name":'):
        return None
    value = orjson.loads(data)
    name = value.get("name") if isinstance(value, dict) else None
    return name if isinstance(name, str) else None


# Sessions


@dataclass
class _Subscription:
    id: str
    wanted: Filter
    task: asyncio.Task[None] | None = None
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0
    # The newest run (by id: UUIDv7, in creation order) whose events have all gone by.
    through: str = ""

    def finished(self, run_id: str) -> None:
        self.through = max(self.through, run_id)


class _End:
    pass


_END = _End()


# Frames, a failure, or whatever a transport put in line with them (its replies).
Item = list[Frame] | SessionFailed | Any


class Session:
    """One connection's subscriptions on one thread (a WebSocket, an SSE stream, a gRPC
    session): each subscription follows the thread with its own filter and resume point, and
    they all write into one bounded outbound queue, with the replies to the connection's
    commands, in order. `dedupe`: an event that several subscriptions take goes out once."""

    def __init__(self, protocol: ThreadProtocol, thread_id: str, *, dedupe: bool) -> None:
        self.thread_id = thread_id
        self._protocol = protocol
        self._subscriptions: dict[str, _Subscription] = {}
        self._outbound: asyncio.Queue[Item | _End] = asyncio.Queue(_OUTBOUND)
        self._dedupe = dedupe
        self._next_id = 0
        # The last seq this session delivered: what its commands were applied through.
        self.delivered = 0
        self._closed = False
        self._open = OpenStream("session")

    async def execute(self, command: Command) -> dict[str, Any]:
        body = command.body
        try:
            if isinstance(body, Subscribe):
                sub = await self.subscribe(body.filter, since=body.since, subscription_id=body.subscription_id)
                await sub.caught_up.wait()
                result = {"subscription_id": sub.id, "replayed_events": sub.sent}
                return success(command.id, result, self.delivered)
            if isinstance(body, Unsubscribe):
                await self.unsubscribe(body.subscription_id)
                return success(command.id, {}, self.delivered)
            result, applied = await self._protocol._run_command(self.thread_id, body)
            return success(command.id, result, applied or self.delivered)
        except ProtocolError as exc:
            return failure(command.id, exc.code, exc.message)
        except GatewayError as exc:
            return failure(command.id, error_code(exc), exc.message)

    async def subscribe(
        self, wanted: Filter, since: int | None = None, subscription_id: str | None = None
    ) -> _Subscription:
        if subscription_id is None:
            self._next_id += 1
            subscription_id = f"sub-{self._next_id}"
        elif subscription_id in self._subscriptions:
            raise ProtocolError("invalid_argument", f"subscription {subscription_id} exists already")
        await self._protocol.visible(self.thread_id)
        sub = _Subscription(subscription_id, wanted)
        self._subscriptions[subscription_id] = sub
        sub.task = asyncio.create_task(self._pump(sub, since), name=f"protocol-{self.thread_id}-{subscription_id}")
        return sub

    async def unsubscribe(self, subscription_id: str) -> None:
        sub = self._subscriptions.pop(subscription_id, None)
        if sub is None:
            raise ProtocolError("no_such_subscription", f"Unknown subscription: {subscription_id}")
        await _stop(sub)

    async def _pump(self, sub: _Subscription, since: int | None) -> None:
        events = self._protocol.events(
            self.thread_id,
            sub.wanted,
            since=since,
            caught_up=sub.caught_up,
            idle=sub.idle,
            subscription_id=sub.id,
            finished=sub.finished,
        )
        try:
            # Closed here, so that the stream leaves its thread when the pump is cancelled,
            # not when the collector finds it.
            async with contextlib.aclosing(events):
                async for frames in events:
                    if not sub.caught_up.is_set():
                        sub.sent += len(frames)
                    await self._outbound.put(frames)
        except asyncio.CancelledError:
            raise
        except GatewayError as exc:
            sub.caught_up.set()
            await self._outbound.put(SessionFailed(error_code(exc), exc.message))
        except Exception:
            sub.caught_up.set()
            logger.exception("the protocol stream of thread %s failed", self.thread_id)
            await self._outbound.put(SessionFailed("internal", "the thread's event stream failed"))

    async def send_reply(self, reply: Any) -> None:
        """Puts a reply in line after the events already on their way (a transport that
        carries both on one connection)."""
        await self._outbound.put(reply)

    async def drain(self) -> None:
        """Waits until the thread has no pending or running run and every subscription has
        sent all of it, then ends `items()` (a client that is done sending commands)."""
        while True:
            for sub in list(self._subscriptions.values()):
                await sub.idle.wait()
            # A run created meanwhile has a subscription busy again, or is about to; one that
            # ended before its admission reached the streams (a signal, from another process
            # or not yet delivered in this one) is the thread's newest, and not yet through.
            if not await self._protocol.busy(self.thread_id) and self._through(
                await self._protocol.newest(self.thread_id)
            ):
                break
            await asyncio.sleep(_DRAIN_POLL)
        await self._outbound.put(_END)

    def _through(self, newest: str | None) -> bool:
        """Whether every subscription is idle and has sent the thread's newest run (or ended)."""
        return all(
            s.idle.is_set() and (newest is None or s.through >= newest or (s.task is not None and s.task.done()))
            for s in self._subscriptions.values()
        )

    async def items(self) -> AsyncIterator[Item]:
        """Frames, replies and a failure, in order, until `drain()` ends them."""
        recent = RecentIds() if self._dedupe else None
        while True:
            item = await self._outbound.get()
            if item is _END:
                return
            if isinstance(item, list):
                if recent is not None:
                    item = [f for f in item if recent.first(f.seq)]
                    if not item:
                        continue
                self.delivered = max(self.delivered, item[-1].seq)
            yield item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._open.close()
        tasks = [s.task for s in self._subscriptions.values() if s.task is not None]
        self._subscriptions.clear()
        # Cancelled before the first await: a transport closes the session from a cancelled
        # scope (an SSE response whose client left), where any await is cancelled at once. And
        # cancelled again until they end: a cancel lost in a library (a Postgres pool's wait)
        # would leave a stream on its thread.
        cancel_for_good(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)


async def _stop(sub: _Subscription) -> None:
    if sub.task is not None:
        cancel_for_good([sub.task])
        with contextlib.suppress(asyncio.CancelledError):
            await sub.task
