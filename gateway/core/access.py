"""What the caller of a request may do, asked of langgraph.json's `@auth.on` handlers before each
action on a thread, run or assistant, with the values the LangGraph Agent Server gives them.

A handler refuses (its status goes to the client), changes the value (metadata stamped on what
is created, or on a search), or returns a filter; the services hand the filter to storage, which
applies it inside the query that reads or writes the record. A record the filter hides is
NotFound, worded as for a record that does not exist. Runs are the `threads` resource, as on the
Agent Server: a run is seen through its thread. Without `auth.path` every check returns None at
once."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from gateway.auth import AuthHandlers, InvalidFilter, current_caller
from gateway.auth.handlers import Action, Resource
from gateway.shared.errors import NotFound
from gateway.shared.records import AccessFilter, AssistantRecord, CancelAction, RunCreate, RunRecord
from gateway.storage import RecordStore


def _uuid(value: str | None) -> UUID | None:
    return UUID(value) if value else None


def metadata_of(value: dict[str, Any]) -> dict[str, Any]:
    """The metadata a handler left in `value` (it may stamp or replace it)."""
    metadata = value.get("metadata")
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidFilter(f"an auth handler set metadata to a {type(metadata).__name__}, not a dict")
    return metadata


def run_thread_metadata(record: RunRecord) -> dict[str, Any]:
    """The metadata of the thread a run created for itself, as storage gives it one."""
    config = record.kwargs.get("config") or {}
    return {**(config.get("metadata") or {}), **record.metadata}


class Access:
    def __init__(self, handlers: AuthHandlers | None, storage: RecordStore) -> None:
        self._handlers = handlers
        self._storage = storage

    @property
    def enabled(self) -> bool:
        return self._handlers is not None

    async def check(self, resource: Resource, action: Action, value: dict[str, Any]) -> AccessFilter | None:
        """The filter of the handler for (resource, action); None when there is none."""
        if self._handlers is None:
            return None
        return await self._handlers.authorize(resource, action, value)

    # Runs

    async def create_run(self, req: RunCreate, record: RunRecord, assistant: AssistantRecord) -> AccessFilter | None:
        """`threads.create_run`: the handler may stamp the run's metadata (which a thread created
        for the run takes too); its filter is the one an existing thread must pass. The run
        records its caller, whom its graph finds in its config."""
        if self._handlers is None:
            return None
        value: dict[str, Any] = {
            "thread_id": None if req.temporary else _uuid(record.thread_id),
            "assistant_id": UUID(assistant.assistant_id),
            "run_id": UUID(record.run_id),
            "status": "pending",
            "metadata": req.metadata,
            "prevent_insert_if_inflight": req.multitask_strategy == "reject",
            "multitask_strategy": req.multitask_strategy,
            "if_not_exists": req.if_not_exists,
            "after_seconds": req.after_seconds,
            "kwargs": record.kwargs,
        }
        access = await self.check("threads", "create_run", value)
        req.metadata = metadata_of(value)
        record.metadata = {**req.metadata, **{k: record.metadata[k] for k in ("graph_id", "assistant_id")}}
        if assistant.metadata.get("created_by") != "system":
            # An assistant a user created is the user's: running it is reading it.
            readable = await self.check("assistants", "read", {"assistant_id": UUID(assistant.assistant_id)})
            if (
                readable is not None
                and await self._storage.get_assistant(assistant.assistant_id, access=readable) is None
            ):
                raise NotFound("Thread or assistant not found.", resource="assistant", id=assistant.assistant_id)
        caller = current_caller()
        if caller is not None:
            req.auth_user = caller.user.to_json()
            req.auth_permissions = list(caller.permissions)
        return access

    async def run(
        self, thread_id: str | None, run_id: str, *, cancel: CancelAction | None = None
    ) -> AccessFilter | None:
        """`threads.read` to read a run, `threads.update` to cancel it."""
        if self._handlers is None:
            return None
        if cancel is None:
            return await self.check("threads", "read", {"thread_id": _uuid(thread_id), "run_id": UUID(run_id)})
        metadata = {"run_ids": [UUID(run_id)], "status": None}
        return await self.check(
            "threads", "update", {"thread_id": _uuid(thread_id), "action": cancel, "metadata": metadata}
        )

    async def check_run(self, record: RunRecord, access: AccessFilter | None, thread_id: str | None) -> None:
        """NotFound unless the run's thread passes `access`: a stored thread in its query; the
        temporary thread of a stateless run, which no table holds, by its metadata in memory."""
        if access is None:
            return
        if record.kwargs.get("temporary"):
            if access.allows(run_thread_metadata(record)):
                return
        elif await self._storage.get_thread(record.thread_id, access=access) is not None:
            return
        if thread_id is not None:
            raise NotFound(
                f"Run {record.run_id} not found on thread {thread_id}.",
                resource="run",
                id=record.run_id,
                metadata={"thread_id": thread_id},
            )
        raise NotFound(f"Run {record.run_id} not found.", resource="run", id=record.run_id)
