"""Threads: creation, lookup, deletion, search, and their state and history."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from uuid import UUID

from langgraph.errors import InvalidUpdateError
from langgraph.pregel import Pregel
from langgraph_sdk.runtime import AccessContext

from gateway.core.access import Access, metadata_of
from gateway.core.assistants import Assistants
from gateway.core.bus import EventBus
from gateway.core.graphs import Graphs
from gateway.core.idempotency import request_key
from gateway.core.scheduler import Scheduler
from gateway.core.state import EMPTY_STATE, thread_change_from_state, thread_state
from gateway.shared.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    GatewayError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ThreadBusy,
    shown,
)
from gateway.shared.limits import check_filter, check_metadata
from gateway.shared.records import (
    THREAD_STATUSES,
    UNFINISHED,
    ThreadChange,
    ThreadFilter,
    ThreadRecord,
    ThreadStatus,
    now_iso,
)
from gateway.shared.util import is_uuid, uuid7
from gateway.storage import THREAD_SORT_KEYS, Storage
from gateway.storage.base import Repeated

logger = logging.getLogger("gateway.threads")

PRUNE_STRATEGIES = ("delete", "keep_latest")
# The keys a history's metadata filter may name: LangGraph's sqlite checkpointer refuses any
# other (it builds its query from them), so every backend does, naming the field.
_HISTORY_KEY = re.compile(r"[A-Za-z0-9_.-]+")


@contextmanager
def _unfit_state(thread_id: str, graph_id: Any) -> Iterator[None]:
    """LangGraph reads a state by preparing its next tasks, which coerces the channels into the
    graph's state schema: a thread whose input did not fit (a run that failed on it) fails there."""
    try:
        yield
    except (TypeError, ValueError) as exc:
        raise Conflict(
            f"The state of thread {thread_id} does not fit graph {graph_id!r}: {type(exc).__name__}: {exc}"
        ) from None


def check_thread_id(thread_id: str) -> str:
    if not is_uuid(thread_id):
        raise InvalidArgument(f"thread_id {shown(thread_id)} is not a UUID", field="thread_id")
    return thread_id


def _status(status: str | None) -> ThreadStatus | None:
    for known in THREAD_STATUSES:
        if status == known:
            return known
    if status is not None:
        raise InvalidArgument(f"status {shown(status)} is not one of: {', '.join(THREAD_STATUSES)}")
    return None


class Threads:
    def __init__(
        self,
        storage: Storage,
        assistants: Assistants,
        scheduler: Scheduler,
        bus: EventBus,
        graphs: Graphs,
        *,
        access: Access | None = None,
        idempotency_window: float = 86_400.0,
    ) -> None:
        self.storage = storage
        self._access = access or Access(None, storage)
        self._idempotency_window = idempotency_window
        self.assistants = assistants
        self._scheduler = scheduler
        self._bus = bus
        self._graphs = graphs

    async def create(
        self,
        *,
        thread_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        if_exists: str = "raise",
        request_id: str | None = None,
    ) -> ThreadRecord:
        """The thread made; for a repeat of a request with a request_id, the one the first
        call made."""
        if if_exists not in ("raise", "do_nothing"):
            raise InvalidArgument(f"if_exists {shown(if_exists)} is not one of: raise, do_nothing")
        body = {"thread_id": thread_id or None, "metadata": metadata or {}, "if_exists": if_exists}
        key = request_key(request_id, "thread", body, self._idempotency_window)
        thread_id = check_thread_id(thread_id) if thread_id else uuid7()
        check_metadata("metadata", metadata)
        value = {"thread_id": UUID(thread_id), "metadata": dict(metadata or {}), "if_exists": if_exists}
        access = await self._access.check("threads", "create", value)
        now = now_iso()
        record = ThreadRecord(thread_id, now, now, now, metadata_of(value))
        try:
            created = await self.storage.create_thread(record, request_key=key)
        except Repeated as repeat:
            # Made by this caller (the key is the caller's): no other check to pass.
            first = await self.storage.get_thread(repeat.thread_id)
            if first is None:
                raise NotFound(
                    f"Thread {repeat.thread_id}, which request_id {request_id} created, no longer exists.",
                    resource="thread",
                    id=repeat.thread_id,
                    metadata={"request_id": str(request_id)},
                ) from None
            return first
        if not created:
            # Another caller's thread exists too, as far as this one can tell: not revealed as such.
            existing = await self.storage.get_thread(thread_id, access=access)
            if existing is not None and if_exists == "do_nothing":
                return existing
            raise AlreadyExists(f"Thread {thread_id} already exists.")
        return record

    async def get(self, thread_id: str) -> ThreadRecord:
        access = await self._access.check("threads", "read", {"thread_id": UUID(check_thread_id(thread_id))})
        record = await self.storage.get_thread(thread_id, access=access)
        if record is None:
            raise NotFound(f"Thread with ID {thread_id} not found", resource="thread", id=thread_id)
        return record

    async def delete(self, thread_id: str) -> None:
        """Deletes the thread with its runs, as the Agent Server does: runs still queued or
        running are cancelled first. No run can be admitted to the thread once its record is
        gone, which happens in the same step that lists the runs to cancel."""
        value = {"thread_id": UUID(check_thread_id(thread_id)), "run_id": None}
        access = await self._access.check("threads", "delete", value)
        unfinished = await self.storage.delete_thread(thread_id, access=access)
        if unfinished is None:
            raise NotFound(f"Thread with ID {thread_id} not found", resource="thread", id=thread_id)
        runs = [live for run_id in unfinished if (live := self._scheduler.live(run_id)) is not None]
        for live in runs:
            await self._scheduler.cancel(live.run_id, "interrupt")
        if runs:
            await asyncio.wait([asyncio.ensure_future(live.done.wait()) for live in runs])
        self._scheduler.forget_thread(thread_id)
        await self._bus.forget(unfinished)
        await self.storage.delete_thread_checkpoints(thread_id)

    async def copy(self, thread_id: str) -> ThreadRecord:
        """A new thread with the thread's metadata, state and checkpoints."""
        access = await self._access.check("threads", "read", {"thread_id": UUID(check_thread_id(thread_id))})
        copy_id = uuid7()
        # Whoever may read the thread must also be allowed to create one.
        await self._access.check("threads", "create", {"thread_id": UUID(copy_id)})
        now = now_iso()
        copied = await self.storage.copy_thread(thread_id, ThreadRecord(copy_id, now, now, now, {}), access=access)
        if copied is None:
            # As the Agent Server answers: a conflict, not a 404.
            raise Conflict(f"Thread {thread_id} not found: there is nothing to copy.")
        return copied

    async def prune(self, thread_ids: list[str], *, strategy: str = "delete") -> int:
        """Deletes the threads (`delete`), or all but their latest checkpoints (`keep_latest`);
        returns how many of them there were."""
        for thread_id in thread_ids:
            check_thread_id(thread_id)
        if strategy not in PRUNE_STRATEGIES:
            raise InvalidArgument(
                f"Invalid strategy: {strategy}. Expected 'delete' or 'keep_latest'.", field="strategy"
            )
        if not thread_ids:
            return 0
        access = await self._access.check("threads", "delete", {"thread_ids": [UUID(t) for t in thread_ids]})
        if access is not None:
            for thread_id in thread_ids:
                if await self.storage.get_thread(thread_id, access=access) is None:
                    raise NotFound("At least one thread not found or not authorized", resource="thread")
        pruned = 0
        for thread_id in dict.fromkeys(thread_ids):
            if strategy == "delete":
                try:
                    await self.delete(thread_id)
                except NotFound:
                    continue
            elif await self.storage.get_thread(thread_id) is None:
                continue
            else:
                await self.storage.keep_latest_checkpoints(thread_id)
            pruned += 1
        return pruned

    async def assistant_deleted(self, assistant_id: str, delete_threads: bool) -> None:
        """What deleting an assistant does to threads and runs: its unfinished runs are
        cancelled and, with `delete_threads`, the threads it ran on deleted (those the caller may
        not delete are left)."""
        if delete_threads:
            where = ThreadFilter(metadata={"assistant_id": assistant_id})
            while found := await self.storage.search_threads(
                where, limit=100, offset=0, sort_by="created_at", descending=False
            ):
                deleted = 0
                for thread in found:
                    try:
                        await self.delete(thread.thread_id)
                        deleted += 1
                    except GatewayError as exc:
                        logger.warning("thread %s of assistant %s is left: %s", thread.thread_id, assistant_id, exc)
                if not deleted:
                    break
        for run in await self.storage.runs_with_status(UNFINISHED):
            if run.assistant_id == assistant_id:
                await self._scheduler.cancel(run.run_id, "interrupt")

    async def patch(self, thread_id: str, *, metadata: dict[str, Any]) -> ThreadRecord:
        """Merges `metadata` into the thread's metadata."""
        check_metadata("metadata", metadata)
        value = {"thread_id": UUID(check_thread_id(thread_id)), "metadata": metadata}
        access = await self._access.check("threads", "update", value)
        metadata = metadata_of(value)
        thread = await self.storage.get_thread(thread_id, access=access)
        change = ThreadChange(metadata={**thread.metadata, **metadata}) if thread is not None else None
        if change is not None:
            # What the thread would hold, not only what this request adds to it.
            check_metadata("metadata", change.metadata)
        if change is None or not await self.storage.update_thread(thread_id, change, access=access):
            raise NotFound(f"Thread with ID {thread_id} not found", resource="thread", id=thread_id)
        updated = await self.storage.get_thread(thread_id)
        if updated is None:
            raise NotFound(f"Thread with ID {thread_id} not found", resource="thread", id=thread_id)
        return updated

    async def search(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        status: str | None = None,
        limit: int = 10,
        offset: int = 0,
        ids: list[str] | None = None,
        values: dict[str, Any] | None = None,
        sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> list[ThreadRecord]:
        if sort_by is not None and sort_by not in THREAD_SORT_KEYS:
            raise InvalidArgument(f"sort_by {shown(sort_by)} is not one of: {', '.join(THREAD_SORT_KEYS)}")
        if sort_order is not None and sort_order not in ("asc", "desc"):
            raise InvalidArgument(f"sort_order {shown(sort_order)} is not one of: asc, desc")
        check_filter("metadata", metadata)
        check_filter("values", values)
        value: dict[str, Any] = {"metadata": dict(metadata or {}), "values": dict(values or {}), "status": status}
        access = await self._access.check("threads", "search", {**value, "limit": limit, "offset": offset})
        where = ThreadFilter(
            metadata=metadata_of(value) or None,
            status=_status(status),
            values=value["values"] or None,
            ids=ids,
            access=access,
        )
        return await self.storage.search_threads(
            where, limit=limit, offset=offset, sort_by=sort_by or "created_at", descending=sort_order != "asc"
        )

    async def count(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        status: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> int:
        check_filter("metadata", metadata)
        check_filter("values", values)
        value: dict[str, Any] = {"metadata": dict(metadata or {}), "values": dict(values or {}), "status": status}
        access = await self._access.check("threads", "search", {**value, "limit": 0, "offset": 0})
        where = ThreadFilter(
            metadata=metadata_of(value) or None, status=_status(status), values=value["values"] or None, access=access
        )
        return await self.storage.count_threads(where)

    @asynccontextmanager
    async def _graph(self, thread: ThreadRecord, access: AccessContext) -> AsyncIterator[Pregel | None]:
        """The graph of the thread's runs (None before any), built for reading or updating its
        state with the thread's config."""
        graph_id = thread.metadata.get("graph_id")
        spec = self.assistants.graphs.get(graph_id) if isinstance(graph_id, str) else None
        if spec is None:
            yield None
            return
        configurable = {
            **(thread.config.get("configurable") or {}),
            "thread_id": thread.thread_id,
            "graph_id": graph_id,
        }
        config: Any = {**thread.config, "configurable": configurable}
        async with self._graphs.build(spec, config, access, checkpointer=self.storage.checkpointer) as graph:
            yield graph

    async def state(
        self, thread_id: str, *, checkpoint_id: str | None = None, subgraphs: bool = False
    ) -> dict[str, Any]:
        thread = await self.get(thread_id)
        if checkpoint_id is not None and not is_uuid(checkpoint_id):
            raise InvalidArgument(f"checkpoint_id {shown(checkpoint_id)} is not a UUID", field="checkpoint_id")
        configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
        if checkpoint_id:
            configurable["checkpoint_id"] = checkpoint_id
        async with self._graph(thread, "threads.read") as graph:
            if graph is None:
                return dict(EMPTY_STATE)
            with _unfit_state(thread_id, thread.metadata.get("graph_id")):
                snapshot = await graph.aget_state({"configurable": configurable}, subgraphs=subgraphs)
        if checkpoint_id and not snapshot.config:
            raise NotFound(
                f"Checkpoint {checkpoint_id} not found on thread {thread_id}.",
                resource="checkpoint",
                id=checkpoint_id,
                metadata={"thread_id": thread_id},
            )
        return thread_state(snapshot)

    async def update_state(
        self,
        thread_id: str,
        values: Any,
        *,
        as_node: str | None = None,
        checkpoint: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Writes `values` as if `as_node` had returned them; returns the new checkpoint's
        config and the thread's new state."""
        access = await self._access.check("threads", "update", {"thread_id": UUID(check_thread_id(thread_id))})
        thread = await self.get(thread_id)
        if access is not None and await self.storage.get_thread(thread_id, access=access) is None:
            raise PermissionDenied("Forbidden")
        if await self.storage.unfinished_runs(thread_id):
            raise ThreadBusy(
                f"Thread {thread_id} has an active run; its state can change only when the run ends.",
                metadata={"thread_id": thread_id},
            )
        configurable = {"checkpoint_ns": "", **(checkpoint or {}), "thread_id": thread_id}
        if isinstance(graph_id := thread.metadata.get("graph_id"), str):
            # The checkpoint it writes names its graph, as the Agent Server's do.
            configurable["graph_id"] = graph_id
        async with self._graph(thread, "threads.update") as graph:
            if graph is None:
                raise BadRequest(
                    f"Thread {thread_id} has no graph yet: run an assistant on it, or set metadata.graph_id, "
                    "before updating its state."
                )
            try:
                next_config = await graph.aupdate_state({"configurable": configurable}, values, as_node=as_node)
            except InvalidUpdateError as exc:
                raise BadRequest(str(exc)) from None
            except (TypeError, ValueError) as exc:
                # The values, or the state they update, do not fit the graph's state schema.
                raise BadRequest(
                    f"Cannot update the state of thread {thread_id}: {type(exc).__name__}: {exc}"
                ) from None
            with _unfit_state(thread_id, thread.metadata.get("graph_id")):
                snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        change = thread_change_from_state(snapshot)
        change.status, change.error = change.status or "idle", b"null"
        await self.storage.update_thread(thread_id, change)
        return dict(next_config["configurable"]), thread_state(snapshot)

    async def history(
        self,
        thread_id: str,
        *,
        limit: int = 10,
        before: str | None = None,
        metadata: dict[str, Any] | None = None,
        checkpoint: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        thread = await self.get(thread_id)
        if before is not None and not is_uuid(before):
            raise InvalidArgument(f"before {shown(before)} is not a checkpoint id")
        if limit < 0:
            raise InvalidArgument("limit must not be negative")
        check_filter("metadata", metadata)
        for key in metadata or ():
            if not _HISTORY_KEY.fullmatch(key):
                raise InvalidArgument(
                    f"metadata filter key {shown(key)} may hold only letters, digits, '_', '.' and '-'",
                    field="metadata",
                )
        configurable = {"checkpoint_ns": "", **(checkpoint or {}), "thread_id": thread_id}
        before_config: Any = {"configurable": {"checkpoint_id": before}} if before else None
        states = []
        async with self._graph(thread, "threads.read") as graph:
            if graph is None:
                return []
            with _unfit_state(thread_id, thread.metadata.get("graph_id")):
                async for snapshot in graph.aget_state_history(
                    {"configurable": configurable}, limit=limit, before=before_config, filter=metadata or None
                ):
                    states.append(thread_state(snapshot))
        return states
