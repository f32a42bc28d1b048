"""What the run core needs from a backend: a record store (assistants, threads, runs and the
queue of each thread) and an event log (the events of resumable runs). The sqlite backend is
the default; a Postgres one implements the same protocols and passes the same suite
(tests/storage/test_conformance.py).

Every method that decides something for a thread (admit, claim, finish, delete) does it in one
transaction: the decision and the write that follows from it cannot be split by another
request's.

Reads and writes made for a caller take the caller's auth filter (`access`, an AccessFilter
from the `@auth.on` handlers of langgraph.json's `auth`) and apply it inside the same query:
a record the filter does not allow is as if it did not exist (None, False, not listed, not
counted, not deleted). For a run, the filter applies to its thread's metadata. `access=None`
means no filter. `AccessFilter.allows` is the semantics every backend must match (the suite
checks each backend's query against it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver

from gateway.records import (
    AccessFilter,
    AssistantFilter,
    AssistantRecord,
    Event,
    IfNotExists,
    RunRecord,
    RunStatus,
    ThreadChange,
    ThreadFilter,
    ThreadRecord,
)

THREAD_SORT_KEYS = ("thread_id", "status", "created_at", "updated_at", "state_updated_at")


class RecordStore(Protocol):
    # Assistants

    async def put_assistant(self, assistant: AssistantRecord) -> AssistantRecord:
        """Inserts the assistant unless one with its id exists; returns the stored one."""
        ...

    async def get_assistant(
        self, assistant_id: str, *, access: AccessFilter | None = None
    ) -> AssistantRecord | None: ...

    async def search_assistants(self, where: AssistantFilter, *, limit: int, offset: int) -> list[AssistantRecord]: ...

    async def count_assistants(self, where: AssistantFilter) -> int: ...

    # Threads

    async def create_thread(self, thread: ThreadRecord) -> bool:
        """False when a thread with its id exists already."""
        ...

    async def get_thread(self, thread_id: str, *, access: AccessFilter | None = None) -> ThreadRecord | None: ...

    async def update_thread(
        self, thread_id: str, change: ThreadChange, *, access: AccessFilter | None = None
    ) -> bool: ...

    async def delete_thread(self, thread_id: str, *, access: AccessFilter | None = None) -> list[str] | None:
        """Deletes the thread, its runs and their events; returns the ids of its runs that had
        not finished (their owner must stop them), or None when there was no such thread."""
        ...

    async def search_threads(
        self, where: ThreadFilter, *, limit: int, offset: int, sort_by: str, descending: bool
    ) -> list[ThreadRecord]: ...

    async def count_threads(self, where: ThreadFilter) -> int: ...

    # Runs

    # `new_thread_metadata`: what a thread created for the run (`if_not_exists` create) gets,
    # under `thread_metadata`; an existing thread only takes `thread_metadata`. `access`: the
    # caller's `create_run` filter, which an existing thread must pass, else NotFound.
    async def admit_run(
        self,
        run: RunRecord,
        request: bytes,
        *,
        if_not_exists: IfNotExists,
        thread_metadata: dict[str, Any],
        max_unfinished: int,
        new_thread_metadata: dict[str, Any] | None = None,
        access: AccessFilter | None = None,
    ) -> list[str]:
        """Queues `run` (pending) on its thread, applying its multitask strategy to the thread's
        unfinished runs, all in one step: raises NotFound (no thread, `if_not_exists` reject),
        TooManyRuns (`max_unfinished` reached) or Conflict (reject on a busy thread); returns
        the unfinished runs that an interrupt or rollback strategy must cancel. `request` is
        the serialised RunCreate, so that any process can execute the run."""
        ...

    async def claim_run(self, thread_id: str) -> RunRecord | None:
        """The thread's oldest pending run, now running, unless a run of the thread runs."""
        ...

    async def finish_run(
        self,
        run_id: str,
        thread_id: str,
        status: RunStatus | None,
        change: ThreadChange,
        *,
        expect: Sequence[RunStatus] = ("pending", "running"),
    ) -> bool:
        """Ends the run with `status` (None deletes it: a rollback) and applies `change` to its
        thread, whose status stays busy while other runs of it are unfinished. Only a run whose
        status is in `expect` is ended; False when it was not."""
        ...

    async def get_run(self, run_id: str, *, access: AccessFilter | None = None) -> RunRecord | None: ...

    async def get_run_request(self, run_id: str) -> bytes | None: ...

    async def list_runs(
        self,
        thread_id: str,
        *,
        status: RunStatus | None,
        limit: int,
        offset: int,
        access: AccessFilter | None = None,
    ) -> list[RunRecord]: ...

    async def runs_with_status(
        self, statuses: Sequence[RunStatus], *, access: AccessFilter | None = None
    ) -> list[RunRecord]: ...

    async def unfinished_runs(self, thread_id: str) -> list[RunRecord]: ...


class EventLog(Protocol):
    """The events of resumable runs, kept for `--event-retention` seconds."""

    async def append_events(self, run_id: str, events: Sequence[Event]) -> None: ...

    async def read_events(self, run_id: str, after: int, limit: int) -> list[Event]: ...

    async def delete_events(self, run_id: str) -> None: ...

    async def prune_events(self, older_than: float) -> int:
        """Deletes events written more than `older_than` seconds ago; returns how many."""
        ...


class Storage(RecordStore, EventLog, Protocol):
    """A backend: records, the event log, and the LangGraph checkpointer over the same database."""

    @property
    def checkpointer(self) -> BaseCheckpointSaver[Any]: ...

    async def setup(self) -> None: ...

    async def close(self) -> None: ...

    async def delete_run_checkpoints(self, thread_id: str, run_id: str) -> None:
        """Deletes the checkpoints (and their writes) one run wrote: a rollback."""
        ...

    async def delete_thread_checkpoints(self, thread_id: str) -> None: ...
