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
from datetime import datetime
from typing import Any, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver

from gateway.shared.errors import RequestIdReused, ThreadBusy, TooManyRuns
from gateway.shared.records import (
    AccessFilter,
    Admission,
    AssistantChange,
    AssistantFilter,
    AssistantRecord,
    Claim,
    CronChange,
    CronFilter,
    CronRecord,
    Event,
    IfNotExists,
    RequestKey,
    RunRecord,
    RunStatus,
    ThreadChange,
    ThreadFilter,
    ThreadRecord,
    thread_config,
)

THREAD_SORT_KEYS = ("thread_id", "status", "created_at", "updated_at", "state_updated_at")


class AssistantChanged(Exception):
    """The assistant a run was made with is no longer the latest version of it (updated, made
    another version the latest, or deleted) by the time of its admission: nothing was stored."""


class Repeated(Exception):
    """A creation's request key was stored by an earlier one with the same body, within its
    window: nothing was stored, and what that creation made is `resource_id` (a run of
    `thread_id`, or the thread `thread_id`)."""

    def __init__(self, resource_id: str, thread_id: str) -> None:
        super().__init__(resource_id)
        self.resource_id = resource_id
        self.thread_id = thread_id


def check_repeat(key: RequestKey, body: str, resource_id: str, thread_id: str) -> None:
    """What every backend decides once it finds `key` stored (with `body`, for `resource_id`)."""
    if body != key.body:
        raise RequestIdReused(
            f"request_id {key.request_id} was used for another request with a different body; "
            "a repeat must send the same request, and a new request a new request_id",
            metadata={"request_id": key.request_id},
        )
    raise Repeated(resource_id, thread_id)


def same_assistant(assistant: AssistantRecord) -> tuple[str, int, str]:
    """What identifies an assistant's state: any change writes a new `updated_at`."""
    return (assistant.assistant_id, assistant.version, assistant.updated_at)


def check_admission(run: RunRecord, unfinished: Sequence[str], max_unfinished: int) -> None:
    """The multitask decision every backend takes, inside its admission transaction."""
    if not unfinished:
        return
    if len(unfinished) >= max_unfinished:
        raise TooManyRuns(
            f"Thread {run.thread_id} already has {len(unfinished)} queued runs (the limit is {max_unfinished}).",
            metadata={"thread_id": run.thread_id},
        )
    if run.multitask_strategy == "reject":
        raise ThreadBusy(
            f"Thread {run.thread_id} is already running a task. Wait for it to finish or choose a "
            "different multitask strategy.",
            metadata={"thread_id": run.thread_id},
        )


def admission_change(
    run: RunRecord,
    metadata: dict[str, Any],
    config: dict[str, Any],
    thread_metadata: dict[str, Any],
    assistant_config: dict[str, Any] | None,
    unfinished: Sequence[str],
) -> ThreadChange:
    """What a run's admission changes on its thread, whose stored metadata and config are
    `metadata` and `config` (see `RecordStore.admit_run`)."""
    change = ThreadChange(status="busy")
    if any(metadata.get(k) != v for k, v in thread_metadata.items()):
        # The thread's state is read with the graph that last ran on it.
        change.metadata = {**metadata, **thread_metadata}
    if assistant_config is not None and not unfinished:
        run_config = {k: v for k, v in (run.kwargs.get("config") or {}).items() if k != "configurable"}
        change.config = thread_config(assistant_config, config, run_config)
    return change


class RecordStore(Protocol):
    # Assistants

    async def put_assistant(self, assistant: AssistantRecord) -> AssistantRecord:
        """Inserts the assistant (and its version) unless one with its id exists; returns the
        stored one."""
        ...

    async def create_assistant(self, assistant: AssistantRecord) -> bool:
        """Inserts the assistant as its version 1; False when one with its id exists."""
        ...

    async def get_assistant(
        self, assistant_id: str, *, access: AccessFilter | None = None
    ) -> AssistantRecord | None: ...

    async def update_assistant(
        self, assistant_id: str, change: AssistantChange, *, access: AccessFilter | None = None
    ) -> AssistantRecord | None:
        """Makes the assistant's next version (one more than its highest) from `change` and
        makes it the latest, in one step; None when there is no such assistant."""
        ...

    async def set_assistant_version(
        self, assistant_id: str, version: int, *, access: AccessFilter | None = None
    ) -> AssistantRecord | None:
        """Makes an existing version the latest; None when there is no such assistant, NotFound
        when it has no such version."""
        ...

    async def list_assistant_versions(
        self,
        assistant_id: str,
        *,
        metadata: dict[str, Any] | None,
        limit: int,
        offset: int,
        access: AccessFilter | None = None,
    ) -> list[AssistantRecord]:
        """The assistant's versions, newest first, as records whose `created_at` is the version's."""
        ...

    async def delete_assistant(self, assistant_id: str, *, access: AccessFilter | None = None) -> bool:
        """Deletes the assistant with its versions and crons."""
        ...

    async def search_assistants(
        self,
        where: AssistantFilter,
        *,
        limit: int,
        offset: int,
        sort_by: str = "created_at",
        descending: bool = True,
    ) -> list[AssistantRecord]: ...

    async def count_assistants(self, where: AssistantFilter) -> int: ...

    # Threads

    async def create_thread(self, thread: ThreadRecord, *, request_key: RequestKey | None = None) -> bool:
        """False when a thread with its id exists already. With `request_key`, the key is
        stored with the thread, in the same transaction (not when no thread was made); if it
        is stored already, nothing is: raises Repeated, or RequestIdReused for another body."""
        ...

    async def get_thread(self, thread_id: str, *, access: AccessFilter | None = None) -> ThreadRecord | None: ...

    async def update_thread(
        self, thread_id: str, change: ThreadChange, *, access: AccessFilter | None = None
    ) -> bool: ...

    async def delete_thread(self, thread_id: str, *, access: AccessFilter | None = None) -> list[str] | None:
        """Deletes the thread, its runs and their events, and its crons; returns the ids of its
        runs that had not finished (their owner must stop them), or None when there was no such
        thread."""
        ...

    async def copy_thread(
        self, thread_id: str, copy: ThreadRecord, *, access: AccessFilter | None = None
    ) -> ThreadRecord | None:
        """Makes `copy` (its id, times and status) a copy of the thread: its metadata, config,
        values and interrupts, and its checkpoints with their pending writes, in one step; None
        when there is no such thread."""
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
        claim_as: str | None = None,
        lease_seconds: float = 0,
        assistant_config: dict[str, Any] | None = None,
        new_thread: bool = False,
        assistant: AssistantRecord | None = None,
        request_key: RequestKey | None = None,
    ) -> Admission:
        """Queues `run` (pending) on its thread, applying its multitask strategy to the thread's
        unfinished runs, all in one step: raises NotFound (no thread, `if_not_exists` reject),
        TooManyRuns (`max_unfinished` reached) or Conflict (reject on a busy thread). With
        `claim_as`, a run whose thread has nothing unfinished is claimed by that owner in the
        same step (running, attempt 1, leased). `request` is the serialised RunCreate, so that
        any process can execute the run. A thread with nothing unfinished takes the config
        `records.thread_config` makes of `assistant_config`, its own and the run's.
        `new_thread`: the thread id was just made for this run (a stateless run), so no thread
        has it and nothing else can refer to it yet. `assistant`: the record the run was made
        with, read earlier (perhaps by another process's change since): raises AssistantChanged
        unless it is still the stored one (`same_assistant`), checked in the same step.
        `request_key`: stored with the run in the same step, before anything else is decided;
        if it is stored already, nothing is: raises Repeated (with the run it made), or
        RequestIdReused for another body."""
        ...

    async def claim_runs(self, owner: str, limit: int, lease_seconds: float) -> list[Claim]:
        """Up to `limit` runs for `owner` to execute: of each thread that has no running run,
        its oldest pending one, now running with its attempt counted and a lease."""
        ...

    async def renew_leases(self, owner: str, run_ids: Sequence[str], lease_seconds: float) -> list[str]:
        """Extends `owner`'s leases; returns the runs it no longer holds (taken over or ended)."""
        ...

    async def expire_leases(
        self, max_attempts: int, *, all_running: bool = False
    ) -> tuple[list[RunRecord], list[RunRecord]]:
        """Runs whose lease ran out (their process died), or every running run with
        `all_running` (the one process that could hold them is starting): those with attempts
        left go back to pending; the others end with `error`, and their thread with them (in the
        same transaction: no reader sees a failed run on a busy thread). Returns (requeued,
        failed)."""
        ...

    async def release_runs(self, owner: str, run_ids: Sequence[str]) -> list[RunRecord]:
        """Hands running runs back to the queue without using up an attempt (a draining process)."""
        ...

    async def finish_run(
        self,
        run_id: str,
        thread_id: str,
        status: RunStatus | None,
        change: ThreadChange,
        *,
        expect: Sequence[RunStatus] = ("pending", "running"),
        owner: str | None = None,
        attempt: int | None = None,
        delete_thread: bool = False,
    ) -> bool:
        """Ends the run with `status` (None deletes it: a rollback) and applies `change` to its
        thread, whose status stays busy while other runs of it are unfinished (or deletes the
        thread: a temporary one). Only a run whose status is in `expect` (and, when given, held
        by `owner` at `attempt`) is ended; False when it was not."""
        ...

    async def get_run(self, run_id: str, *, access: AccessFilter | None = None) -> RunRecord | None: ...

    async def get_run_request(self, run_id: str) -> bytes | None: ...

    async def delete_run(self, thread_id: str, run_id: str, *, access: AccessFilter | None = None) -> RunRecord | None:
        """Deletes a run that has ended, with its events; raises Conflict for one that has not,
        and returns None when the thread has no such run."""
        ...

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

    async def count_runs(self, statuses: Sequence[RunStatus]) -> int:
        """How many runs have one of `statuses` (the queue's depth, for the metrics)."""
        ...

    async def prune_request_keys(self) -> int:
        """Deletes the request keys whose window has passed; returns how many."""
        ...

    async def ping(self) -> None:
        """Raises unless the database answers (a readiness probe)."""
        ...

    async def unfinished_runs(self, thread_id: str) -> list[RunRecord]: ...

    # Crons

    async def create_cron(self, cron: CronRecord) -> None: ...

    async def get_cron(self, cron_id: str, *, access: AccessFilter | None = None) -> CronRecord | None: ...

    async def update_cron(
        self, cron_id: str, change: CronChange, *, access: AccessFilter | None = None
    ) -> CronRecord | None:
        """Writes the columns `change` sets (next_run_date only when it sets one, so that an
        update does not undo a tick claimed meanwhile); None when there is no such cron."""
        ...

    async def delete_cron(self, cron_id: str, *, access: AccessFilter | None = None) -> bool: ...

    async def search_crons(
        self, where: CronFilter, *, limit: int, offset: int, sort_by: str, descending: bool
    ) -> list[CronRecord]: ...

    async def count_crons(self, where: CronFilter) -> int: ...

    async def due_crons(self, now: datetime, limit: int) -> list[CronRecord]:
        """Enabled crons whose next run is due at `now` and whose end time has not passed,
        the longest due first."""
        ...

    async def claim_cron(self, cron_id: str, tick: datetime, next_run_date: datetime) -> bool:
        """Moves the cron from its due `tick` to `next_run_date`, in one statement that only one
        caller can win: True for the process that is to fire this tick."""
        ...


class EventLog(Protocol):
    """The events of resumable runs, kept for `--event-retention` seconds."""

    async def append_events(self, run_id: str, events: Sequence[Event]) -> None: ...

    async def read_events(self, run_id: str, after: int, limit: int) -> list[Event]: ...

    async def last_seq(self, run_id: str) -> int:
        """The seq of the run's last logged event (0 for none)."""
        ...

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

    async def keep_latest_checkpoints(self, thread_id: str) -> None:
        """Deletes every checkpoint of the thread (and its writes) but the latest of each
        namespace, which then has no parent."""
        ...
