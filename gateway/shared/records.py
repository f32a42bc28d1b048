"""What the gateway keeps and passes around: a run's events, the stored records, the run-create
request and a thread's typed change. Storage, the core and every edge (the bridge included)
import this module; it imports nothing of theirs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, get_args

import orjson

RunStatus = Literal["pending", "running", "success", "error", "timeout", "interrupted"]
ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
MultitaskStrategy = Literal["reject", "interrupt", "rollback", "enqueue"]
CancelAction = Literal["interrupt", "rollback"]
Durability = Literal["sync", "async", "exit"]
OnDisconnect = Literal["cancel", "continue"]
IfNotExists = Literal["create", "reject"]
OnCompletion = Literal["delete", "keep"]

# The API's stream modes, in the order the HTTP API lists them.
STREAM_MODES = (
    "values",
    "updates",
    "messages",
    "messages-tuple",
    "custom",
    "events",
    "debug",
    "tasks",
    "checkpoints",
    "tools",
)
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
THREAD_STATUSES: tuple[ThreadStatus, ...] = get_args(ThreadStatus)
MULTITASK_STRATEGIES: tuple[MultitaskStrategy, ...] = get_args(MultitaskStrategy)
CANCEL_ACTIONS: tuple[CancelAction, ...] = get_args(CancelAction)
DURABILITIES: tuple[Durability, ...] = get_args(Durability)
# A run in one of these has not ended: it holds its thread, or waits for it.
UNFINISHED: tuple[RunStatus, ...] = ("pending", "running")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def lost_run_error(attempt: int) -> bytes:
    """The error of a run whose process died with it on its last allowed attempt."""
    return orjson.dumps({"error": "RunLost", "message": f"the run's process stopped {attempt} times"})


class Event(NamedTuple):
    """One event of a run: the single representation every edge encodes from."""

    seq: int
    # The event name without namespace: "values", "messages/partial", "metadata", "error", "end", ...
    name: str
    # The subgraph namespace, one "<node>:<task id>" segment per level.
    ns: tuple[str, ...]
    # The payload, compact UTF-8 JSON, encoded once.
    data: bytes


def end_event(status: str, seq: int = 0) -> Event:
    """The last event of every run; seq 0 when it is told from the stored record, not the run's
    own stream (it then has no id to resume from)."""
    return Event(seq, "end", (), b'{"status":"' + status.encode() + b'"}')


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
    on_disconnect: OnDisconnect = "continue"
    multitask_strategy: MultitaskStrategy = "enqueue"
    if_not_exists: IfNotExists = "reject"
    interrupt_before: list[str] | str | None = None
    interrupt_after: list[str] | str | None = None
    checkpoint_id: str | None = None
    checkpoint: dict[str, Any] | None = None
    durability: Durability = "async"
    on_completion: OnCompletion = "delete"
    after_seconds: float = 0.0
    # Who created the run (langgraph.json `auth`): the user as JSON and the permissions it was
    # granted, which the graph finds in its config. Set by the core, never from a request.
    auth_user: dict[str, Any] | None = None
    auth_permissions: list[str] = field(default_factory=list)
    # A client-chosen UUID that makes the creation idempotent (gateway.core.idempotency).
    request_id: str | None = None

    @property
    def temporary(self) -> bool:
        """A stateless run whose thread is deleted with it when it ends."""
        return self.thread_id is None and self.on_completion == "delete"


@dataclass
class AssistantRecord:
    assistant_id: str
    graph_id: str
    name: str
    created_at: str
    updated_at: str
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "assistant_id": self.assistant_id,
            "graph_id": self.graph_id,
            "config": self.config,
            "context": self.context,
            "metadata": self.metadata,
            "name": self.name,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "version": self.version,
            "description": self.description,
        }

    def version_json(self) -> dict[str, Any]:
        """As one of its versions is listed: `created_at` is when the version was made."""
        return {
            "assistant_id": self.assistant_id,
            "version": self.version,
            "graph_id": self.graph_id,
            "config": self.config,
            "context": self.context,
            "metadata": self.metadata,
            "created_at": self.created_at,
            "name": self.name,
            "description": self.description,
        }


def synced_config(config: dict[str, Any], context: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """An assistant's config and context kept in step, as the Agent Server keeps them: the
    context is `config.configurable` when that is set, else `configurable` becomes the context."""
    config = dict(config)
    if config.get("configurable"):
        return config, dict(config["configurable"])
    if context:
        config["configurable"] = dict(context)
    return config, dict(context or {})


@dataclass(frozen=True)
class AssistantChange:
    """A PATCH of an assistant, which makes its next version; None keeps a field as it is."""

    graph_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    # Merged into the current metadata.
    metadata: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None

    def apply(self, current: AssistantRecord, version: int, now: str) -> AssistantRecord:
        config, context = dict(self.config or {}), self.context
        if config.get("configurable"):
            context = dict(config["configurable"])
        elif context:
            config["configurable"] = dict(context)
        return AssistantRecord(
            assistant_id=current.assistant_id,
            graph_id=self.graph_id if self.graph_id is not None else current.graph_id,
            name=self.name if self.name is not None else current.name,
            created_at=current.created_at,
            updated_at=now,
            config=config or current.config,
            context=context if context is not None else current.context,
            metadata={**current.metadata, **(self.metadata or {})},
            version=version,
            description=self.description if self.description is not None else current.description,
        )


def thread_config(assistant: dict[str, Any], thread: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """What a thread's config becomes when a run starts on it, as the Agent Server merges it:
    the assistant's config under the thread's and the run's, with the assistant's and the
    thread's `configurable` (a run's own `configurable` stays the run's)."""
    configurable = {**(assistant.get("configurable") or {}), **(thread.get("configurable") or {})}
    return {**assistant, **thread, **run, "configurable": configurable}


@dataclass
class ThreadRecord:
    thread_id: str
    created_at: str
    updated_at: str
    state_updated_at: str
    metadata: dict[str, Any]
    status: ThreadStatus = "idle"
    config: dict[str, Any] = field(default_factory=dict)
    # Graph data stays JSON text: written once when a run ends, passed through on reads.
    values: bytes = b"null"
    interrupts: bytes = b"{}"
    error: bytes = b"null"

    def to_json(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "state_updated_at": self.state_updated_at,
            "metadata": self.metadata,
            "status": self.status,
            "config": self.config,
            "values": orjson.Fragment(self.values),
            "error": orjson.Fragment(self.error),
            "interrupts": orjson.Fragment(self.interrupts),
        }


@dataclass
class ThreadChange:
    """What a write changes on a thread; None leaves a field as it is."""

    status: ThreadStatus | None = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    values: bytes | None = None
    interrupts: bytes | None = None
    error: bytes | None = None
    state_updated_at: str | None = None


@dataclass
class RunRecord:
    run_id: str
    thread_id: str
    assistant_id: str
    created_at: str
    updated_at: str
    status: RunStatus
    metadata: dict[str, Any]
    multitask_strategy: MultitaskStrategy
    kwargs: dict[str, Any]
    # How many times a process took the run to execute it (not part of the API's run object).
    attempt: int = 0

    @property
    def resumable(self) -> bool:
        return bool(self.kwargs.get("resumable"))

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "assistant_id": self.assistant_id,
            "metadata": self.metadata,
            "status": self.status,
            "kwargs": self.kwargs,
            "multitask_strategy": self.multitask_strategy,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Admission:
    """What admitting a run decided: the unfinished runs its strategy cancels, and whether the
    run was claimed at once by the admitting process (its thread had nothing unfinished)."""

    cancel: list[str]
    claimed: bool = False


@dataclass(frozen=True)
class RequestKey:
    """What an idempotent creation stores with the run or thread it makes, in the same
    transaction: unique per (caller, request_id) for `window` seconds. `body` is a digest of
    the request, which a repeat must match."""

    caller: str
    request_id: str
    body: str
    window: float


@dataclass(frozen=True)
class Claim:
    """A run taken by a process to execute: the record (running, with its attempt) and the
    serialised RunCreate it was created with."""

    run: RunRecord
    request: bytes


# A JSON scalar, the values an access filter compares.
Scalar = str | int | float | bool | None


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON has it, the way storage compares inside its queries: 1 equals 1.0, but
    true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class Equals:
    """The record's metadata has `key`, and its value is `value`."""

    key: str
    value: Scalar


@dataclass(frozen=True)
class Contains:
    """The record's metadata has `key`, an array holding each of `values` (in any order)."""

    key: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class AccessFilter:
    """What an auth handler lets its caller see of a record, as a condition on the record's
    metadata (for a run, its thread's metadata) that storage applies inside its query, so that
    a record the caller may not see is never read: every one of `conditions` holds, at least
    one of `any_of` holds when there are any (`$or`), and every one of `all_of` holds
    (`$and`). `allows` is the reference semantics every backend's SQL must agree with."""

    conditions: tuple[Equals | Contains, ...] = ()
    any_of: tuple[AccessFilter, ...] = ()
    all_of: tuple[AccessFilter, ...] = ()

    def allows(self, metadata: dict[str, Any]) -> bool:
        for condition in self.conditions:
            if condition.key not in metadata:
                return False
            found = metadata[condition.key]
            if isinstance(condition, Equals):
                if not json_equal(found, condition.value):
                    return False
            elif not isinstance(found, list) or not all(
                any(json_equal(item, wanted) for item in found) for wanted in condition.values
            ):
                return False
        if self.any_of and not any(group.allows(metadata) for group in self.any_of):
            return False
        return all(group.allows(metadata) for group in self.all_of)


@dataclass(frozen=True)
class ThreadFilter:
    """A thread search as storage applies it, inside its query."""

    metadata: dict[str, Any] | None = None
    status: ThreadStatus | None = None
    values: dict[str, Any] | None = None
    ids: list[str] | None = None
    # The caller's auth filter on the threads' metadata.
    access: AccessFilter | None = None


@dataclass(frozen=True)
class AssistantFilter:
    graph_id: str | None = None
    # A case-insensitive part of the name.
    name: str | None = None
    metadata: dict[str, Any] | None = None
    # The caller's auth filter on the assistants' metadata.
    access: AccessFilter | None = None


ASSISTANT_SORT_KEYS = ("assistant_id", "created_at", "updated_at", "name", "graph_id")
CRON_SORT_KEYS = ("cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at", "updated_at")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@dataclass
class CronRecord:
    """A schedule of runs: the run-create body (`payload`) made into a run at each tick of
    `schedule` (in `timezone`, UTC when None), on `thread_id` or, when None, on a new thread each
    time, until `end_time`."""

    cron_id: str
    assistant_id: str
    thread_id: str | None
    schedule: str
    payload: dict[str, Any]
    next_run_date: datetime
    created_at: str
    updated_at: str
    end_time: datetime | None = None
    timezone: str | None = None
    user_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    on_run_completed: OnCompletion | None = None
    enabled: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "cron_id": self.cron_id,
            "assistant_id": self.assistant_id,
            "thread_id": self.thread_id,
            "on_run_completed": self.on_run_completed,
            "end_time": _iso(self.end_time),
            "schedule": self.schedule,
            "timezone": self.timezone,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "user_id": self.user_id,
            "payload": self.payload,
            "next_run_date": _iso(self.next_run_date),
            "metadata": self.metadata,
            "enabled": self.enabled,
        }


@dataclass(frozen=True)
class CronChange:
    """What an update writes to a cron; None leaves a column as it is (`clear_end_time`
    removes the end time). The core computes each value from the cron it read."""

    schedule: str | None = None
    timezone: str | None = None
    next_run_date: datetime | None = None
    end_time: datetime | None = None
    clear_end_time: bool = False
    enabled: bool | None = None
    on_run_completed: OnCompletion | None = None
    payload: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class CronFilter:
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
    # The caller's auth filter on the crons' metadata, and on the metadata of their threads
    # (a cron without a thread passes the latter).
    access: AccessFilter | None = None
    thread_access: AccessFilter | None = None
