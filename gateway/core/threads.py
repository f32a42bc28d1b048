"""Threads: creation, lookup, deletion, search, and their state and history."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import InvalidUpdateError

from gateway._utils import is_uuid, uuid7
from gateway.core.assistants import Assistants
from gateway.core.state import EMPTY_STATE, thread_fields_from_state, thread_state
from gateway.errors import AlreadyExists, BadRequest, Conflict, InvalidArgument, NotFound
from gateway.storage import Storage, ThreadRecord, now_iso

THREAD_STATUSES = ("idle", "busy", "interrupted", "error")
THREAD_SORT_KEYS = ("thread_id", "status", "created_at", "updated_at", "state_updated_at")
# Filters the storage cannot apply are applied to at most this many of its newest matches.
_SCAN_LIMIT = 10_000


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
        raise InvalidArgument(f"thread_id {thread_id!r} is not a UUID")
    return thread_id


class Threads:
    def __init__(self, storage: Storage, assistants: Assistants, checkpointer: BaseCheckpointSaver[Any] | None) -> None:
        self.storage = storage
        self.assistants = assistants
        self.checkpointer = checkpointer

    async def create(
        self, *, thread_id: str | None = None, metadata: dict[str, Any] | None = None, if_exists: str = "raise"
    ) -> ThreadRecord:
        if if_exists not in ("raise", "do_nothing"):
            raise InvalidArgument(f"if_exists {if_exists!r} is not one of: raise, do_nothing")
        thread_id = check_thread_id(thread_id) if thread_id else uuid7()
        now = now_iso()
        record = ThreadRecord(thread_id, now, now, now, dict(metadata or {}))
        if not await self.storage.create_thread(record):
            if if_exists == "do_nothing":
                return await self.get(thread_id)
            raise AlreadyExists(f"Thread {thread_id} already exists.")
        return record

    async def get(self, thread_id: str) -> ThreadRecord:
        record = await self.storage.get_thread(check_thread_id(thread_id))
        if record is None:
            raise NotFound(f"Thread with ID {thread_id} not found")
        return record

    async def delete(self, thread_id: str, *, busy: bool) -> None:
        await self.get(thread_id)
        if busy:
            raise Conflict(f"Thread {thread_id} has an active run; cancel it before deleting the thread.")
        await self.storage.delete_thread(thread_id)
        if self.checkpointer is not None:
            await self.checkpointer.adelete_thread(thread_id)

    async def patch(self, thread_id: str, *, metadata: dict[str, Any]) -> ThreadRecord:
        """Merges `metadata` into the thread's metadata."""
        thread = await self.get(thread_id)
        await self.storage.update_thread(thread_id, metadata={**thread.metadata, **metadata})
        return await self.get(thread_id)

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
        if status is not None and status not in THREAD_STATUSES:
            raise InvalidArgument(f"status {status!r} is not one of: {', '.join(THREAD_STATUSES)}")
        if sort_by is not None and sort_by not in THREAD_SORT_KEYS:
            raise InvalidArgument(f"sort_by {sort_by!r} is not one of: {', '.join(THREAD_SORT_KEYS)}")
        if sort_order is not None and sort_order not in ("asc", "desc"):
            raise InvalidArgument(f"sort_order {sort_order!r} is not one of: asc, desc")
        if ids is None and not values and sort_by is None and sort_order is None:
            return await self.storage.search_threads(metadata=metadata, status=status, limit=limit, offset=offset)
        found = await self._scan(metadata, status, ids, values)
        key = sort_by or "created_at"
        found.sort(key=lambda t: getattr(t, key), reverse=(sort_order or "desc") == "desc")
        return found[offset : offset + limit]

    async def count(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        status: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> int:
        if status is not None and status not in THREAD_STATUSES:
            raise InvalidArgument(f"status {status!r} is not one of: {', '.join(THREAD_STATUSES)}")
        if not values:
            return await self.storage.count_threads(metadata=metadata, status=status)
        return len(await self._scan(metadata, status, None, values))

    async def _scan(
        self,
        metadata: dict[str, Any] | None,
        status: str | None,
        ids: list[str] | None,
        values: dict[str, Any] | None,
    ) -> list[ThreadRecord]:
        found = await self.storage.search_threads(metadata=metadata, status=status, limit=_SCAN_LIMIT, offset=0)
        if ids is not None:
            wanted = set(ids)
            found = [t for t in found if t.thread_id in wanted]
        if values:
            found = [t for t in found if _contains(orjson.loads(t.values), values)]
        return found

    def _graph(self, thread: ThreadRecord) -> Any:
        graph_id = thread.metadata.get("graph_id")
        spec = self.assistants.graphs.get(graph_id) if isinstance(graph_id, str) else None
        if spec is None or self.checkpointer is None:
            return None
        return spec.graph.copy(update={"checkpointer": self.checkpointer})

    async def state(
        self, thread_id: str, *, checkpoint_id: str | None = None, subgraphs: bool = False
    ) -> dict[str, Any]:
        thread = await self.get(thread_id)
        if checkpoint_id is not None and not is_uuid(checkpoint_id):
            raise InvalidArgument(f"checkpoint_id {checkpoint_id!r} is not a UUID")
        graph = self._graph(thread)
        if graph is None:
            return dict(EMPTY_STATE)
        configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
        if checkpoint_id:
            configurable["checkpoint_id"] = checkpoint_id
        with _unfit_state(thread_id, thread.metadata.get("graph_id")):
            snapshot = await graph.aget_state({"configurable": configurable}, subgraphs=subgraphs)
        if checkpoint_id and not snapshot.config:
            raise NotFound(f"Checkpoint {checkpoint_id} not found on thread {thread_id}.")
        return thread_state(snapshot)

    async def update_state(
        self,
        thread_id: str,
        values: Any,
        *,
        as_node: str | None = None,
        checkpoint: dict[str, Any] | None = None,
        busy: bool,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Writes `values` as if `as_node` had returned them; returns the new checkpoint's
        config and the thread's new state."""
        thread = await self.get(thread_id)
        if busy:
            raise Conflict(f"Thread {thread_id} has an active run; its state can change only when the run ends.")
        graph = self._graph(thread)
        if graph is None:
            raise BadRequest(
                f"Thread {thread_id} has no graph yet: run an assistant on it, or set metadata.graph_id, "
                "before updating its state."
            )
        configurable = {"checkpoint_ns": "", **(checkpoint or {}), "thread_id": thread_id}
        try:
            next_config = await graph.aupdate_state({"configurable": configurable}, values, as_node=as_node)
        except InvalidUpdateError as exc:
            raise BadRequest(str(exc)) from None
        except (TypeError, ValueError) as exc:
            # The values, or the state they update, do not fit the graph's state schema.
            raise BadRequest(f"Cannot update the state of thread {thread_id}: {type(exc).__name__}: {exc}") from None
        with _unfit_state(thread_id, thread.metadata.get("graph_id")):
            snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        fields = thread_fields_from_state(snapshot)
        fields.setdefault("status", "idle")
        fields["error"] = b"null"
        await self.storage.update_thread(thread_id, **fields)
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
            raise InvalidArgument(f"before {before!r} is not a checkpoint id")
        if limit < 0:
            raise InvalidArgument("limit must not be negative")
        graph = self._graph(thread)
        if graph is None:
            return []
        configurable = {"checkpoint_ns": "", **(checkpoint or {}), "thread_id": thread_id}
        before_config = {"configurable": {"checkpoint_id": before}} if before else None
        states = []
        with _unfit_state(thread_id, thread.metadata.get("graph_id")):
            async for snapshot in graph.aget_state_history(
                {"configurable": configurable}, limit=limit, before=before_config, filter=metadata or None
            ):
                states.append(thread_state(snapshot))
        return states


def _contains(values: Any, wanted: dict[str, Any]) -> bool:
    return isinstance(values, dict) and all(values.get(k) == v for k, v in wanted.items())
