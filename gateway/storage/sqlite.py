"""The default backend: threads, runs, assistants and the event log in one sqlite file (WAL
mode), beside the LangGraph checkpoints that the checkpointer keeps in the same file.

Every statement, ours and the checkpointer's, runs on the event loop's thread, on one
connection, under one lock, and no transaction spans an `await`. A statement on a local sqlite
file in WAL mode takes microseconds; a hop to a worker thread and back (aiosqlite) costs a full
turn of the event loop, and under load a stateful run made a dozen of them. The methods are
`async` for the protocol's sake (the Postgres backend awaits its server) but never suspend, so
a method is atomic with respect to every other coroutine, and a multi-statement write is also
one sqlite transaction (`_write`), which no checkpointer statement can join.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointTuple
from langgraph.checkpoint.sqlite import SqliteSaver

from gateway.shared.errors import Conflict, NotFound, TimedOut
from gateway.shared.limits import MAX_SEARCH_SECONDS
from gateway.shared.records import (
    UNFINISHED,
    AccessFilter,
    Admission,
    AssistantChange,
    AssistantFilter,
    AssistantRecord,
    Claim,
    CronChange,
    CronFilter,
    CronRecord,
    Equals,
    Event,
    IfNotExists,
    RequestKey,
    RunRecord,
    RunStatus,
    ThreadChange,
    ThreadFilter,
    ThreadRecord,
    lost_run_error,
    now_iso,
    thread_config,
)
from gateway.shared.serde import json_text as _dumps
from gateway.storage._checkpoints import checkpoint_metadata
from gateway.storage._owner import FileOwner
from gateway.storage._rows import assistant_row, cron_row, run_row, thread_row
from gateway.storage.base import AssistantChanged, check_admission, check_repeat, same_assistant

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gw_assistants (
    assistant_id TEXT PRIMARY KEY,
    graph_id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    config TEXT NOT NULL,
    context TEXT NOT NULL,
    metadata TEXT NOT NULL,
    version INTEGER NOT NULL,
    description TEXT
);
CREATE TABLE IF NOT EXISTS gw_threads (
    thread_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    state_updated_at TEXT NOT NULL,
    metadata TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    "values" BLOB NOT NULL,
    interrupts BLOB NOT NULL,
    error BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS gw_runs (
    run_id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL,
    assistant_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT NOT NULL,
    multitask_strategy TEXT NOT NULL,
    kwargs BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS gw_runs_thread ON gw_runs (thread_id, created_at);
CREATE INDEX IF NOT EXISTS gw_runs_status ON gw_runs (status);
CREATE TABLE IF NOT EXISTS gw_run_events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    ns TEXT NOT NULL,
    data BLOB NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS gw_run_events_created ON gw_run_events (created_at);
CREATE TABLE IF NOT EXISTS gw_assistant_versions (
    assistant_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    graph_id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    config TEXT NOT NULL,
    context TEXT NOT NULL,
    metadata TEXT NOT NULL,
    description TEXT,
    PRIMARY KEY (assistant_id, version)
);
CREATE TABLE IF NOT EXISTS gw_crons (
    cron_id TEXT PRIMARY KEY,
    assistant_id TEXT NOT NULL,
    thread_id TEXT,
    user_id TEXT,
    schedule TEXT NOT NULL,
    timezone TEXT,
    end_time TEXT,
    next_run_date TEXT NOT NULL,
    payload TEXT NOT NULL,
    metadata TEXT NOT NULL,
    on_run_completed TEXT,
    enabled INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS gw_crons_due ON gw_crons (next_run_date) WHERE enabled;
CREATE TABLE IF NOT EXISTS gw_request_keys (
    caller TEXT NOT NULL,
    request_id TEXT NOT NULL,
    body TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (caller, request_id)
);
CREATE INDEX IF NOT EXISTS gw_request_keys_expires ON gw_request_keys (expires_at);
"""
# Columns added since the first schema: (table, column, definition).
_MIGRATIONS = (
    ("gw_runs", "attempt", "INTEGER NOT NULL DEFAULT 0"),
    ("gw_runs", "request", "BLOB"),
    ("gw_runs", "owner", "TEXT"),
    ("gw_runs", "lease_until", "REAL"),
)

_THREAD_COLUMNS = (
    'thread_id, created_at, updated_at, state_updated_at, metadata, status, config, "values", interrupts, error'
)
_RUN_COLUMNS = (
    "run_id, thread_id, assistant_id, created_at, updated_at, status, metadata, multitask_strategy, kwargs, attempt"
)
_ASSISTANT_COLUMNS = (
    "assistant_id, graph_id, name, created_at, updated_at, config, context, metadata, version, description"
)
_VERSION_COLUMNS = (
    "assistant_id, graph_id, name, created_at, created_at, config, context, metadata, version, description"
)
_CRON_COLUMNS = (
    "cron_id, assistant_id, thread_id, user_id, schedule, timezone, end_time, next_run_date, payload, metadata, "
    "on_run_completed, enabled, created_at, updated_at"
)
_UNFINISHED = "status IN ('pending', 'running')"
# Virtual machine steps between two looks at a search's deadline (about a millisecond's worth).
_PROGRESS_STEPS = 10_000
_SORT_COLUMNS = {
    "thread_id": "thread_id",
    "status": "status",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "state_updated_at": "state_updated_at",
}


def _moment(value: datetime | None) -> str | None:
    """A moment as fixed-width UTC text, which sqlite orders as it orders time."""
    # isoformat, not strftime: strftime's %Y does not pad years before 1000 to four digits.
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


def _json_value(value: Any) -> tuple[str, tuple[Any, ...]]:
    """A condition on a row of json_each() that holds when its value equals `value`."""
    if value is None:
        return "type = 'null'", ()
    if value is True:
        return "type = 'true'", ()
    if value is False:
        return "type = 'false'", ()
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        # sqlite holds a JSON integer past 64 bits as a real, and cannot bind the int.
        return "type IN ('integer', 'real') AND value = ?", (float(value),)
    if isinstance(value, (int, float)):
        return "type IN ('integer', 'real') AND value = ?", (value,)
    if isinstance(value, str):
        return "type = 'text' AND value = ?", (value,)
    kind = "object" if isinstance(value, dict) else "array"
    return "type = ? AND value = json(?)", (kind, _dumps(value))


def _contains(column: str, wanted: dict[str, Any] | None, where: list[str], args: list[Any]) -> None:
    """A condition that holds when the JSON object in `column` has each key of `wanted` with its
    value. One json_each() per record, whatever the number of keys: a walk of the object each
    (an EXISTS per key) made a search's cost its keys times its records' size, on the loop."""
    if not wanted:
        return
    tests: list[str] = []
    test_args: list[Any] = []
    for key, value in wanted.items():
        condition, values = _json_value(value)
        tests.append(f"(key = ? AND {condition})")
        test_args.extend((key, *values))
    # The object's keys are distinct (written from a dict): one matching member per wanted key.
    where.append(
        f"(SELECT count(*) FROM json_each(CAST({column} AS TEXT)) WHERE key IN ({', '.join('?' * len(wanted))}) "
        f"AND ({' OR '.join(tests)})) = ?"
    )
    args.extend((*wanted, *test_args, len(wanted)))


def _access(column: str, access: AccessFilter) -> tuple[str, list[Any]]:
    """A condition on the JSON object in `column` that holds where `access.allows` it."""
    parts: list[str] = []
    args: list[Any] = []
    for condition in access.conditions:
        if isinstance(condition, Equals):
            test, values = _json_value(condition.value)
            parts.append(f"EXISTS (SELECT 1 FROM json_each(CAST({column} AS TEXT)) WHERE key = ? AND {test})")
            args.extend((condition.key, *values))
            continue
        # Contains: an array at the key, and each wanted value among its elements.
        elements = ""
        element_args: list[Any] = []
        for wanted in condition.values:
            test, values = _json_value(wanted)
            elements += f" AND EXISTS (SELECT 1 FROM json_each(m.value) WHERE {test})"
            element_args.extend(values)
        parts.append(
            f"EXISTS (SELECT 1 FROM json_each(CAST({column} AS TEXT)) AS m WHERE m.key = ? AND m.type = 'array'"
            f"{elements})"
        )
        args.extend((condition.key, *element_args))
    if access.any_of:
        groups = [_access(column, group) for group in access.any_of]
        parts.append("(" + " OR ".join(sql for sql, _ in groups) + ")")
        for _, group_args in groups:
            args.extend(group_args)
    for group in access.all_of:
        sql, group_args = _access(column, group)
        parts.append(sql)
        args.extend(group_args)
    return ("(" + " AND ".join(parts) + ")") if parts else "1", args


def _access_clause(column: str, access: AccessFilter | None, where: list[str], args: list[Any]) -> None:
    if access is not None:
        sql, values = _access(column, access)
        where.append(sql)
        args.extend(values)


def _run_access(access: AccessFilter | None) -> tuple[str, list[Any]]:
    """` AND ...` for a query on gw_runs: the run's thread passes `access`."""
    if access is None:
        return "", []
    sql, args = _access("t.metadata", access)
    return f" AND EXISTS (SELECT 1 FROM gw_threads AS t WHERE t.thread_id = gw_runs.thread_id AND {sql})", args


def _thread_where(where: ThreadFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if where.status:
        clauses.append("status = ?")
        args.append(where.status)
    if where.ids is not None:
        clauses.append(f"thread_id IN ({', '.join('?' for _ in where.ids)})" if where.ids else "0")
        args.extend(where.ids)
    _contains("metadata", where.metadata, clauses, args)
    _contains('"values"', where.values, clauses, args)
    _access_clause("metadata", where.access, clauses, args)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _assistant_where(where: AssistantFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if where.graph_id is not None:
        clauses.append("graph_id = ?")
        args.append(where.graph_id)
    if where.name is not None:
        clauses.append("instr(lower(name), lower(?)) > 0")
        args.append(where.name)
    _contains("metadata", where.metadata, clauses, args)
    _access_clause("metadata", where.access, clauses, args)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _assistant_order(sort_by: str, descending: bool) -> str:
    column = f"lower({sort_by})" if sort_by in ("name", "graph_id") else sort_by
    direction = "DESC" if descending else "ASC"
    return f"{column} {direction}, assistant_id {direction}"


def _cron_where(where: CronFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for column in ("assistant_id", "thread_id"):
        if getattr(where, column) is not None:
            clauses.append(f"{column} = ?")
            args.append(getattr(where, column))
    if where.enabled is not None:
        clauses.append("enabled = ?")
        args.append(int(where.enabled))
    _contains("metadata", where.metadata, clauses, args)
    _access_clause("metadata", where.access, clauses, args)
    if where.thread_access is not None:
        sql, values = _access("t.metadata", where.thread_access)
        clauses.append(
            f"(gw_crons.thread_id IS NULL OR EXISTS (SELECT 1 FROM gw_threads AS t "
            f"WHERE t.thread_id = gw_crons.thread_id AND {sql}))"
        )
        args.extend(values)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


class InlineSqliteSaver(SqliteSaver):
    """LangGraph's sqlite checkpointer with its async methods run in place, on the storage's
    connection and lock (see the module's docstring)."""

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return super().put(config, checkpoint, checkpoint_metadata(config, metadata), new_versions)  # type: ignore[arg-type]

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.get_tuple(config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        # The sync generator holds the lock while it yields: drain it before yielding here.
        for item in list(self.list(config, filter=filter, before=before, limit=limit)):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

    async def aget_delta_channel_history(self, *, config: RunnableConfig, channels: Sequence[str]) -> Any:
        return self.get_delta_channel_history(config=config, channels=channels)


class SqliteStorage:
    def __init__(self, path: str, *, search_seconds: float = MAX_SEARCH_SECONDS) -> None:
        self.path = path
        self._search_seconds = search_seconds
        self._conn: sqlite3.Connection | None = None
        self._saver: InlineSqliteSaver | None = None
        self._lock = threading.Lock()
        self._owner = FileOwner(path)

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("storage is not set up")
        return self._conn

    @property
    def checkpointer(self) -> InlineSqliteSaver:
        if self._saver is None:
            raise RuntimeError("storage is not set up")
        return self._saver

    @property
    def lock(self) -> threading.Lock:
        """The lock every statement on the connection runs under (the store's too)."""
        return self._lock

    async def setup(self) -> None:
        # check_same_thread=False: a graph may read its checkpoints from a worker thread (a sync
        # node calling get_state); the lock keeps it out of our transactions.
        self._owner.acquire()
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(_SCHEMA)
        for table, column, definition in _MIGRATIONS:
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        self._conn = conn
        saver = InlineSqliteSaver(conn)
        saver.lock = self._lock
        saver.setup()
        self._saver = saver

    async def close(self) -> None:
        if self._conn is not None:
            with self._lock:
                self._conn.close()
            self._conn = None
            self._saver = None
        self._owner.release()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self.conn.execute(sql, args).fetchall()

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        with self._lock:
            return self.conn.execute(sql, args).fetchone()

    def _matching(self, sql: str, args: Sequence[Any]) -> list[Any]:
        """The rows of a search or count on a caller's filter, which is stopped (TimedOut) past
        `search_seconds`: it runs on the loop's thread, and the filter's limits bound its cost
        per record, not the number of records."""
        deadline = time.monotonic() + self._search_seconds

        def past_deadline() -> bool:
            return time.monotonic() > deadline

        with self._lock:
            conn = self.conn
            conn.set_progress_handler(past_deadline, _PROGRESS_STEPS)
            try:
                return conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError as exc:
                if str(exc) != "interrupted":
                    raise
                raise TimedOut(f"the search ran longer than {self._search_seconds:g} s and was stopped") from None
            finally:
                conn.set_progress_handler(None, 0)

    # Assistants

    @staticmethod
    def _insert_assistant(conn: sqlite3.Connection, assistant: AssistantRecord) -> bool:
        cur = conn.execute(
            f"INSERT OR IGNORE INTO gw_assistants ({_ASSISTANT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                assistant.assistant_id,
                assistant.graph_id,
                assistant.name,
                assistant.created_at,
                assistant.updated_at,
                _dumps(assistant.config),
                _dumps(assistant.context),
                _dumps(assistant.metadata),
                assistant.version,
                assistant.description,
            ),
        )
        if cur.rowcount == 1:
            SqliteStorage._insert_version(conn, assistant)
        return cur.rowcount == 1

    @staticmethod
    def _insert_version(conn: sqlite3.Connection, assistant: AssistantRecord) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO gw_assistant_versions (assistant_id, version, graph_id, name, created_at, config, "
            "context, metadata, description) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                assistant.assistant_id,
                assistant.version,
                assistant.graph_id,
                assistant.name,
                assistant.updated_at,
                _dumps(assistant.config),
                _dumps(assistant.context),
                _dumps(assistant.metadata),
                assistant.description,
            ),
        )

    @staticmethod
    def _visible_assistant(
        conn: sqlite3.Connection, assistant_id: str, access: AccessFilter | None
    ) -> AssistantRecord | None:
        where, args = ["assistant_id = ?"], [assistant_id]
        _access_clause("metadata", access, where, args)
        row = conn.execute(f"SELECT {_ASSISTANT_COLUMNS} FROM gw_assistants WHERE {' AND '.join(where)}", args)
        found = row.fetchone()
        return None if found is None else assistant_row(found)

    @staticmethod
    def _make_latest(conn: sqlite3.Connection, assistant: AssistantRecord) -> None:
        conn.execute(
            "UPDATE gw_assistants SET graph_id = ?, name = ?, updated_at = ?, config = ?, context = ?, metadata = ?, "
            "version = ?, description = ? WHERE assistant_id = ?",
            (
                assistant.graph_id,
                assistant.name,
                assistant.updated_at,
                _dumps(assistant.config),
                _dumps(assistant.context),
                _dumps(assistant.metadata),
                assistant.version,
                assistant.description,
                assistant.assistant_id,
            ),
        )

    async def put_assistant(self, assistant: AssistantRecord) -> AssistantRecord:
        with self._write() as conn:
            self._insert_assistant(conn, assistant)
            # A gateway that stored its system assistants before versions were kept.
            stored = self._visible_assistant(conn, assistant.assistant_id, None)
            assert stored is not None
            self._insert_version(conn, stored)
        return stored

    async def create_assistant(self, assistant: AssistantRecord) -> bool:
        with self._write() as conn:
            return self._insert_assistant(conn, assistant)

    async def get_assistant(self, assistant_id: str, *, access: AccessFilter | None = None) -> AssistantRecord | None:
        with self._lock:
            return self._visible_assistant(self.conn, assistant_id, access)

    async def update_assistant(
        self, assistant_id: str, change: AssistantChange, *, access: AccessFilter | None = None
    ) -> AssistantRecord | None:
        with self._write() as conn:
            current = self._visible_assistant(conn, assistant_id, access)
            if current is None:
                return None
            highest = conn.execute(
                "SELECT max(version) FROM gw_assistant_versions WHERE assistant_id = ?", (assistant_id,)
            ).fetchone()[0]
            updated = change.apply(current, max(int(highest or 0), current.version) + 1, now_iso())
            self._insert_version(conn, updated)
            self._make_latest(conn, updated)
        return updated

    async def set_assistant_version(
        self, assistant_id: str, version: int, *, access: AccessFilter | None = None
    ) -> AssistantRecord | None:
        with self._write() as conn:
            current = self._visible_assistant(conn, assistant_id, access)
            if current is None:
                return None
            row = conn.execute(
                f"SELECT {_VERSION_COLUMNS} FROM gw_assistant_versions WHERE assistant_id = ? AND version = ?",
                (assistant_id, version),
            ).fetchone()
            if row is None:
                raise NotFound(
                    f"Version {version} not found for assistant {assistant_id}",
                    resource="assistant",
                    id=assistant_id,
                    metadata={"version": str(version)},
                )
            chosen = assistant_row(row)
            chosen.created_at, chosen.updated_at = current.created_at, now_iso()
            self._make_latest(conn, chosen)
        return chosen

    async def list_assistant_versions(
        self,
        assistant_id: str,
        *,
        metadata: dict[str, Any] | None,
        limit: int,
        offset: int,
        access: AccessFilter | None = None,
    ) -> list[AssistantRecord]:
        where, args = ["assistant_id = ?"], [assistant_id]
        _contains("metadata", metadata, where, args)
        _access_clause("metadata", access, where, args)
        rows = self._matching(
            f"SELECT {_VERSION_COLUMNS} FROM gw_assistant_versions WHERE {' AND '.join(where)} "
            "ORDER BY version DESC LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
        return [assistant_row(row) for row in rows]

    async def delete_assistant(self, assistant_id: str, *, access: AccessFilter | None = None) -> bool:
        where, args = ["assistant_id = ?"], [assistant_id]
        _access_clause("metadata", access, where, args)
        with self._write() as conn:
            if conn.execute(f"DELETE FROM gw_assistants WHERE {' AND '.join(where)}", args).rowcount != 1:
                return False
            conn.execute("DELETE FROM gw_assistant_versions WHERE assistant_id = ?", (assistant_id,))
            conn.execute("DELETE FROM gw_crons WHERE assistant_id = ?", (assistant_id,))
        return True

    async def search_assistants(
        self,
        where: AssistantFilter,
        *,
        limit: int,
        offset: int,
        sort_by: str = "created_at",
        descending: bool = True,
    ) -> list[AssistantRecord]:
        clause, args = _assistant_where(where)
        rows = self._matching(
            f"SELECT {_ASSISTANT_COLUMNS} FROM gw_assistants{clause} ORDER BY {_assistant_order(sort_by, descending)} "
            "LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
        return [assistant_row(row) for row in rows]

    async def count_assistants(self, where: AssistantFilter) -> int:
        clause, args = _assistant_where(where)
        return int(self._matching(f"SELECT count(*) FROM gw_assistants{clause}", args)[0][0])

    # Threads

    @staticmethod
    def _insert_thread(conn: sqlite3.Connection, thread: ThreadRecord) -> bool:
        cur = conn.execute(
            f"INSERT OR IGNORE INTO gw_threads ({_THREAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                thread.thread_id,
                thread.created_at,
                thread.updated_at,
                thread.state_updated_at,
                _dumps(thread.metadata),
                thread.status,
                _dumps(thread.config),
                thread.values,
                thread.interrupts,
                thread.error,
            ),
        )
        return cur.rowcount == 1

    async def create_thread(self, thread: ThreadRecord, *, request_key: RequestKey | None = None) -> bool:
        with self._write() as conn:
            if request_key is not None:
                self._check_key(conn, request_key)
            if not self._insert_thread(conn, thread):
                return False
            if request_key is not None:
                self._insert_key(conn, request_key, thread.thread_id, thread.thread_id)
            return True

    # Request keys

    @staticmethod
    def _check_key(conn: sqlite3.Connection, key: RequestKey) -> None:
        # Every write holds the database's one write lock: no other process can store the key
        # between this look and the insert that follows in the same transaction.
        row = conn.execute(
            "SELECT body, resource_id, thread_id FROM gw_request_keys "
            "WHERE caller = ? AND request_id = ? AND expires_at > ?",
            (key.caller, key.request_id, time.time()),
        ).fetchone()
        if row is not None:
            check_repeat(key, *row)

    @staticmethod
    def _insert_key(conn: sqlite3.Connection, key: RequestKey, resource_id: str, thread_id: str) -> None:
        # REPLACE: an expired key of the same id that was not pruned yet.
        conn.execute(
            "INSERT OR REPLACE INTO gw_request_keys VALUES (?, ?, ?, ?, ?, ?)",
            (key.caller, key.request_id, key.body, resource_id, thread_id, time.time() + key.window),
        )

    async def prune_request_keys(self) -> int:
        with self._write() as conn:
            return conn.execute("DELETE FROM gw_request_keys WHERE expires_at <= ?", (time.time(),)).rowcount

    async def get_thread(self, thread_id: str, *, access: AccessFilter | None = None) -> ThreadRecord | None:
        where, args = ["thread_id = ?"], [thread_id]
        _access_clause("metadata", access, where, args)
        row = self._one(f"SELECT {_THREAD_COLUMNS} FROM gw_threads WHERE {' AND '.join(where)}", args)
        return None if row is None else thread_row(row)

    @staticmethod
    def _change_thread(conn: sqlite3.Connection, thread_id: str, change: ThreadChange) -> bool:
        names = ["updated_at = ?"]
        values: list[Any] = [now_iso()]
        for name in ("status", "values", "interrupts", "error", "state_updated_at"):
            value = getattr(change, name)
            if value is not None:
                names.append(f'"{name}" = ?')
                values.append(value)
        for name in ("metadata", "config"):
            value = getattr(change, name)
            if value is not None:
                names.append(f"{name} = ?")
                values.append(_dumps(value))
        cur = conn.execute(f"UPDATE gw_threads SET {', '.join(names)} WHERE thread_id = ?", (*values, thread_id))
        return cur.rowcount == 1

    @staticmethod
    def _visible(conn: sqlite3.Connection, thread_id: str, access: AccessFilter | None) -> bool:
        where, args = ["thread_id = ?"], [thread_id]
        _access_clause("metadata", access, where, args)
        return conn.execute(f"SELECT 1 FROM gw_threads WHERE {' AND '.join(where)}", args).fetchone() is not None

    async def update_thread(self, thread_id: str, change: ThreadChange, *, access: AccessFilter | None = None) -> bool:
        with self._write() as conn:
            if access is not None and not self._visible(conn, thread_id, access):
                return False
            return self._change_thread(conn, thread_id, change)

    async def delete_thread(self, thread_id: str, *, access: AccessFilter | None = None) -> list[str] | None:
        where, args = ["thread_id = ?"], [thread_id]
        _access_clause("metadata", access, where, args)
        with self._write() as conn:
            if conn.execute(f"DELETE FROM gw_threads WHERE {' AND '.join(where)}", args).rowcount != 1:
                return None
            unfinished = [
                row[0]
                for row in conn.execute(
                    f"SELECT run_id FROM gw_runs WHERE thread_id = ? AND {_UNFINISHED} ORDER BY created_at",
                    (thread_id,),
                )
            ]
            conn.execute(
                "DELETE FROM gw_run_events WHERE run_id IN (SELECT run_id FROM gw_runs WHERE thread_id = ?)",
                (thread_id,),
            )
            conn.execute("DELETE FROM gw_runs WHERE thread_id = ?", (thread_id,))
            conn.execute("DELETE FROM gw_crons WHERE thread_id = ?", (thread_id,))
        return unfinished

    async def copy_thread(
        self, thread_id: str, copy: ThreadRecord, *, access: AccessFilter | None = None
    ) -> ThreadRecord | None:
        where, args = ["thread_id = ?"], [thread_id]
        _access_clause("metadata", access, where, args)
        with self._write() as conn:
            row = conn.execute(f"SELECT {_THREAD_COLUMNS} FROM gw_threads WHERE {' AND '.join(where)}", args).fetchone()
            if row is None:
                return None
            source = thread_row(row)
            copy.metadata, copy.config = source.metadata, source.config
            copy.values, copy.interrupts, copy.error = source.values, source.interrupts, source.error
            copy.status = "idle" if source.status == "busy" else source.status
            if not self._insert_thread(conn, copy):
                raise Conflict(f"Thread {copy.thread_id} already exists.")
            for table in ("checkpoints", "writes"):
                columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] != "thread_id"]
                chosen = ", ".join(columns)
                if table == "checkpoints":
                    # The copy's checkpoints name the copy as their thread.
                    chosen = chosen.replace(
                        "metadata",
                        "CASE WHEN json_valid(CAST(metadata AS TEXT)) AND "
                        "json_type(CAST(metadata AS TEXT), '$.thread_id') IS NOT NULL "
                        "THEN CAST(json_set(CAST(metadata AS TEXT), '$.thread_id', ?) AS BLOB) ELSE metadata END",
                    )
                values = (
                    (copy.thread_id, thread_id) if table == "writes" else (copy.thread_id, copy.thread_id, thread_id)
                )
                conn.execute(
                    f"INSERT INTO {table} (thread_id, {', '.join(columns)}) SELECT ?, {chosen} FROM {table} "
                    "WHERE thread_id = ?",
                    values,
                )
        return copy

    async def search_threads(
        self, where: ThreadFilter, *, limit: int, offset: int, sort_by: str, descending: bool
    ) -> list[ThreadRecord]:
        clause, args = _thread_where(where)
        order = f"{_SORT_COLUMNS[sort_by]} {'DESC' if descending else 'ASC'}, thread_id"
        rows = self._matching(
            f"SELECT {_THREAD_COLUMNS} FROM gw_threads{clause} ORDER BY {order} LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
        return [thread_row(row) for row in rows]

    async def count_threads(self, where: ThreadFilter) -> int:
        clause, args = _thread_where(where)
        return int(self._matching(f"SELECT count(*) FROM gw_threads{clause}", args)[0][0])

    # Runs

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
        thread_id = run.thread_id
        with self._write() as conn:
            if request_key is not None:
                self._check_key(conn, request_key)
            if assistant is not None and (
                conn.execute(
                    "SELECT 1 FROM gw_assistants WHERE assistant_id = ? AND version = ? AND updated_at = ?",
                    same_assistant(assistant),
                ).fetchone()
                is None
            ):
                raise AssistantChanged(assistant.assistant_id)
            row = conn.execute("SELECT metadata, config FROM gw_threads WHERE thread_id = ?", (thread_id,)).fetchone()
            if row is not None and access is not None and not self._visible(conn, thread_id, access):
                # Another caller's thread: as if there were none, whether or not one may be created.
                raise NotFound(f"Thread {thread_id} not found.", resource="thread", id=thread_id)
            change = ThreadChange(status="busy")
            if row is None:
                if if_not_exists != "create":
                    raise NotFound(f"Thread {thread_id} not found.", resource="thread", id=thread_id)
                now = now_iso()
                metadata = {**(new_thread_metadata or {}), **thread_metadata}
                self._insert_thread(conn, ThreadRecord(thread_id, now, now, now, metadata))
            else:
                metadata = orjson.loads(row[0])
                if any(metadata.get(k) != v for k, v in thread_metadata.items()):
                    # The thread's state is read with the graph that last ran on it.
                    change.metadata = {**metadata, **thread_metadata}
            unfinished = [
                r[0]
                for r in conn.execute(
                    f"SELECT run_id FROM gw_runs WHERE thread_id = ? AND {_UNFINISHED} ORDER BY created_at, run_id",
                    (thread_id,),
                )
            ]
            check_admission(run, unfinished, max_unfinished)
            if assistant_config is not None and not unfinished:
                existing = orjson.loads(row[1]) if row is not None else {}
                run_config = {k: v for k, v in (run.kwargs.get("config") or {}).items() if k != "configurable"}
                change.config = thread_config(assistant_config, existing, run_config)
            claimed = claim_as is not None and not unfinished
            if claimed:
                run.status, run.attempt = "running", 1
            conn.execute(
                f"INSERT INTO gw_runs ({_RUN_COLUMNS}, request, owner, lease_until) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.run_id,
                    thread_id,
                    run.assistant_id,
                    run.created_at,
                    run.updated_at,
                    run.status,
                    _dumps(run.metadata),
                    run.multitask_strategy,
                    orjson.dumps(run.kwargs),
                    run.attempt,
                    request,
                    claim_as if claimed else None,
                    time.time() + lease_seconds if claimed else None,
                ),
            )
            self._change_thread(conn, thread_id, change)
            if request_key is not None:
                self._insert_key(conn, request_key, run.run_id, thread_id)
        cancel = unfinished if run.multitask_strategy in ("interrupt", "rollback") else []
        return Admission(cancel, claimed)

    async def claim_runs(self, owner: str, limit: int, lease_seconds: float) -> list[Claim]:
        claims: list[Claim] = []
        if limit <= 0:
            return claims
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT {_RUN_COLUMNS}, request FROM gw_runs AS r WHERE status = 'pending' "
                "AND NOT EXISTS (SELECT 1 FROM gw_runs AS o WHERE o.thread_id = r.thread_id AND "
                "(o.status = 'running' OR (o.status = 'pending' AND (o.created_at, o.run_id) < (r.created_at, r.run_id)))) "
                "ORDER BY created_at, run_id LIMIT ?",
                (limit,),
            ).fetchall()
            now = now_iso()
            for row in rows:
                run = run_row(row)
                run.status, run.updated_at, run.attempt = "running", now, run.attempt + 1
                conn.execute(
                    "UPDATE gw_runs SET status = 'running', updated_at = ?, attempt = ?, owner = ?, lease_until = ? "
                    "WHERE run_id = ?",
                    (now, run.attempt, owner, time.time() + lease_seconds, run.run_id),
                )
                claims.append(Claim(run, bytes(row[10] or b"{}")))
        return claims

    async def renew_leases(self, owner: str, run_ids: Sequence[str], lease_seconds: float) -> list[str]:
        held: set[str] = set()
        with self._write() as conn:
            for run_id in run_ids:
                cur = conn.execute(
                    "UPDATE gw_runs SET lease_until = ? WHERE run_id = ? AND owner = ? AND status = 'running'",
                    (time.time() + lease_seconds, run_id, owner),
                )
                if cur.rowcount == 1:
                    held.add(run_id)
        return [run_id for run_id in run_ids if run_id not in held]

    async def expire_leases(
        self, max_attempts: int, *, all_running: bool = False
    ) -> tuple[list[RunRecord], list[RunRecord]]:
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM gw_runs WHERE status = 'running' "
                "AND (? OR lease_until IS NULL OR lease_until < ?) ORDER BY created_at, run_id",
                (all_running, time.time()),
            ).fetchall()
            requeued: list[RunRecord] = []
            failed: list[RunRecord] = []
            for row in rows:
                run = run_row(row)
                run.status = "pending" if run.attempt < max_attempts else "error"
                (requeued if run.status == "pending" else failed).append(run)
                conn.execute(
                    "UPDATE gw_runs SET status = ?, owner = NULL, lease_until = NULL, updated_at = ? WHERE run_id = ?",
                    (run.status, now_iso(), run.run_id),
                )
            for run in failed:
                change = ThreadChange(status="error", error=lost_run_error(run.attempt))
                if conn.execute(
                    f"SELECT 1 FROM gw_runs WHERE thread_id = ? AND {_UNFINISHED} LIMIT 1", (run.thread_id,)
                ).fetchone():
                    change.status = "busy"
                self._change_thread(conn, run.thread_id, change)
        return requeued, failed

    async def release_runs(self, owner: str, run_ids: Sequence[str]) -> list[RunRecord]:
        released = []
        with self._write() as conn:
            for run_id in run_ids:
                row = conn.execute(
                    f"SELECT {_RUN_COLUMNS} FROM gw_runs WHERE run_id = ? AND owner = ? AND status = 'running'",
                    (run_id, owner),
                ).fetchone()
                if row is None:
                    continue
                run = run_row(row)
                run.status, run.attempt = "pending", run.attempt - 1
                conn.execute(
                    "UPDATE gw_runs SET status = 'pending', attempt = ?, owner = NULL, lease_until = NULL "
                    "WHERE run_id = ?",
                    (run.attempt, run_id),
                )
                released.append(run)
        return released

    async def finish_run(
        self,
        run_id: str,
        thread_id: str,
        status: RunStatus | None,
        change: ThreadChange,
        *,
        expect: Sequence[RunStatus] = UNFINISHED,
        owner: str | None = None,
        attempt: int | None = None,
        delete_thread: bool = False,
    ) -> bool:
        condition = f"run_id = ? AND status IN ({', '.join('?' for _ in expect)})"
        args: list[Any] = [run_id, *expect]
        if owner is not None:
            condition += " AND owner = ? AND attempt = ?"
            args += [owner, attempt]
        with self._write() as conn:
            if status is None:
                cur = conn.execute(f"DELETE FROM gw_runs WHERE {condition}", args)
            else:
                cur = conn.execute(
                    f"UPDATE gw_runs SET status = ?, updated_at = ?, owner = NULL, lease_until = NULL WHERE {condition}",
                    (status, now_iso(), *args),
                )
            if cur.rowcount != 1:
                return False
            if delete_thread:
                conn.execute("DELETE FROM gw_runs WHERE thread_id = ?", (thread_id,))
                conn.execute("DELETE FROM gw_threads WHERE thread_id = ?", (thread_id,))
                return True
            if conn.execute(
                f"SELECT 1 FROM gw_runs WHERE thread_id = ? AND {_UNFINISHED} LIMIT 1", (thread_id,)
            ).fetchone():
                change.status = "busy"
            self._change_thread(conn, thread_id, change)
        return True

    async def get_run(self, run_id: str, *, access: AccessFilter | None = None) -> RunRecord | None:
        visible, args = _run_access(access)
        row = self._one(f"SELECT {_RUN_COLUMNS} FROM gw_runs WHERE run_id = ?{visible}", (run_id, *args))
        return None if row is None else run_row(row)

    async def get_run_request(self, run_id: str) -> bytes | None:
        row = self._one("SELECT request FROM gw_runs WHERE run_id = ?", (run_id,))
        return None if row is None or row[0] is None else bytes(row[0])

    async def delete_run(self, thread_id: str, run_id: str, *, access: AccessFilter | None = None) -> RunRecord | None:
        visible, args = _run_access(access)
        with self._write() as conn:
            row = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM gw_runs WHERE run_id = ? AND thread_id = ?{visible}",
                (run_id, thread_id, *args),
            ).fetchone()
            if row is None:
                return None
            run = run_row(row)
            if run.status in UNFINISHED:
                raise Conflict(f"Run {run_id} is {run.status}: cancel it before deleting it.")
            conn.execute("DELETE FROM gw_run_events WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM gw_runs WHERE run_id = ?", (run_id,))
        return run

    async def list_runs(
        self,
        thread_id: str,
        *,
        status: RunStatus | None,
        limit: int,
        offset: int,
        access: AccessFilter | None = None,
    ) -> list[RunRecord]:
        visible, args = _run_access(access)
        sql = f"SELECT {_RUN_COLUMNS} FROM gw_runs WHERE thread_id = ?{visible}"
        args = [thread_id, *args]
        if status:
            sql += " AND status = ?"
            args.append(status)
        rows = self._all(sql + " ORDER BY created_at DESC, run_id DESC LIMIT ? OFFSET ?", (*args, limit, offset))
        return [run_row(row) for row in rows]

    async def runs_with_status(
        self, statuses: Sequence[RunStatus], *, access: AccessFilter | None = None
    ) -> list[RunRecord]:
        marks = ", ".join("?" for _ in statuses)
        visible, args = _run_access(access)
        rows = self._all(
            f"SELECT {_RUN_COLUMNS} FROM gw_runs WHERE status IN ({marks}){visible} ORDER BY created_at, run_id",
            (*statuses, *args),
        )
        return [run_row(row) for row in rows]

    async def count_runs(self, statuses: Sequence[RunStatus]) -> int:
        marks = ", ".join("?" for _ in statuses)
        return int(self._one(f"SELECT count(*) FROM gw_runs WHERE status IN ({marks})", tuple(statuses))[0])

    async def ping(self) -> None:
        self._one("SELECT 1 FROM gw_runs LIMIT 1")

    async def unfinished_runs(self, thread_id: str) -> list[RunRecord]:
        rows = self._all(
            f"SELECT {_RUN_COLUMNS} FROM gw_runs WHERE thread_id = ? AND {_UNFINISHED} ORDER BY created_at, run_id",
            (thread_id,),
        )
        return [run_row(row) for row in rows]

    # Crons

    async def create_cron(self, cron: CronRecord) -> None:
        with self._write() as conn:
            conn.execute(
                f"INSERT INTO gw_crons ({_CRON_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cron.cron_id,
                    cron.assistant_id,
                    cron.thread_id,
                    cron.user_id,
                    cron.schedule,
                    cron.timezone,
                    _moment(cron.end_time),
                    _moment(cron.next_run_date),
                    _dumps(cron.payload),
                    _dumps(cron.metadata),
                    cron.on_run_completed,
                    int(cron.enabled),
                    cron.created_at,
                    cron.updated_at,
                ),
            )

    @staticmethod
    def _visible_cron(conn: sqlite3.Connection, cron_id: str, access: AccessFilter | None) -> CronRecord | None:
        where, args = ["cron_id = ?"], [cron_id]
        _access_clause("metadata", access, where, args)
        row = conn.execute(f"SELECT {_CRON_COLUMNS} FROM gw_crons WHERE {' AND '.join(where)}", args).fetchone()
        return None if row is None else cron_row(row)

    async def get_cron(self, cron_id: str, *, access: AccessFilter | None = None) -> CronRecord | None:
        with self._lock:
            return self._visible_cron(self.conn, cron_id, access)

    async def update_cron(
        self, cron_id: str, change: CronChange, *, access: AccessFilter | None = None
    ) -> CronRecord | None:
        names: list[str] = ["updated_at = ?"]
        values: list[Any] = [now_iso()]
        for name in ("schedule", "timezone", "on_run_completed"):
            if getattr(change, name) is not None:
                names.append(f"{name} = ?")
                values.append(getattr(change, name))
        for name in ("next_run_date", "end_time"):
            if getattr(change, name) is not None:
                names.append(f"{name} = ?")
                values.append(_moment(getattr(change, name)))
        if change.clear_end_time:
            names.append("end_time = NULL")
        if change.enabled is not None:
            names.append("enabled = ?")
            values.append(int(change.enabled))
        for name in ("payload", "metadata"):
            if getattr(change, name) is not None:
                names.append(f"{name} = ?")
                values.append(_dumps(getattr(change, name)))
        with self._write() as conn:
            if self._visible_cron(conn, cron_id, access) is None:
                return None
            conn.execute(f"UPDATE gw_crons SET {', '.join(names)} WHERE cron_id = ?", (*values, cron_id))
            return self._visible_cron(conn, cron_id, None)

    async def delete_cron(self, cron_id: str, *, access: AccessFilter | None = None) -> bool:
        where, args = ["cron_id = ?"], [cron_id]
        _access_clause("metadata", access, where, args)
        with self._write() as conn:
            return conn.execute(f"DELETE FROM gw_crons WHERE {' AND '.join(where)}", args).rowcount == 1

    async def search_crons(
        self, where: CronFilter, *, limit: int, offset: int, sort_by: str, descending: bool
    ) -> list[CronRecord]:
        clause, args = _cron_where(where)
        direction = "DESC" if descending else "ASC"
        rows = self._matching(
            f"SELECT {_CRON_COLUMNS} FROM gw_crons{clause} ORDER BY {sort_by} {direction}, cron_id {direction} "
            "LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
        return [cron_row(row) for row in rows]

    async def count_crons(self, where: CronFilter) -> int:
        clause, args = _cron_where(where)
        return int(self._matching(f"SELECT count(*) FROM gw_crons{clause}", args)[0][0])

    async def due_crons(self, now: datetime, limit: int) -> list[CronRecord]:
        moment = _moment(now)
        rows = self._all(
            f"SELECT {_CRON_COLUMNS} FROM gw_crons WHERE enabled AND next_run_date <= ? "
            "AND (end_time IS NULL OR end_time >= ?) ORDER BY next_run_date LIMIT ?",
            (moment, moment, limit),
        )
        return [cron_row(row) for row in rows]

    async def claim_cron(self, cron_id: str, tick: datetime, next_run_date: datetime) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE gw_crons SET next_run_date = ? WHERE cron_id = ? AND next_run_date = ?",
                (_moment(next_run_date), cron_id, _moment(tick)),
            )
            return cur.rowcount == 1

    # Event log of resumable runs

    async def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        now = time.time()
        rows = [(run_id, e.seq, e.name, "|".join(e.ns), e.data, now) for e in events]
        with self._write() as conn:
            conn.executemany("INSERT OR IGNORE INTO gw_run_events VALUES (?, ?, ?, ?, ?, ?)", rows)

    async def read_events(self, run_id: str, after: int, limit: int) -> list[Event]:
        rows = self._all(
            "SELECT seq, name, ns, data FROM gw_run_events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (run_id, after, limit),
        )
        return [Event(seq, name, tuple(ns.split("|")) if ns else (), bytes(data)) for seq, name, ns, data in rows]

    async def last_seq(self, run_id: str) -> int:
        row = self._one("SELECT max(seq) FROM gw_run_events WHERE run_id = ?", (run_id,))
        return int(row[0] or 0)

    async def delete_events(self, run_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM gw_run_events WHERE run_id = ?", (run_id,))

    async def prune_events(self, older_than: float) -> int:
        with self._write() as conn:
            return conn.execute("DELETE FROM gw_run_events WHERE created_at < ?", (time.time() - older_than,)).rowcount

    # Checkpoints

    async def delete_run_checkpoints(self, thread_id: str, run_id: str) -> None:
        with self._write() as conn:
            found = "thread_id = ? AND json_extract(CAST(metadata AS TEXT), '$.run_id') = ?"
            conn.execute(
                "DELETE FROM writes WHERE thread_id = ? AND checkpoint_id IN "
                f"(SELECT checkpoint_id FROM checkpoints WHERE {found})",
                (thread_id, thread_id, run_id),
            )
            conn.execute(f"DELETE FROM checkpoints WHERE {found}", (thread_id, run_id))

    async def delete_thread_checkpoints(self, thread_id: str) -> None:
        self.checkpointer.delete_thread(thread_id)

    async def keep_latest_checkpoints(self, thread_id: str) -> None:
        latest = "SELECT checkpoint_ns, max(checkpoint_id) FROM checkpoints WHERE thread_id = ? GROUP BY checkpoint_ns"
        with self._write() as conn:
            for table in ("writes", "checkpoints"):
                conn.execute(
                    f"DELETE FROM {table} WHERE thread_id = ? AND (checkpoint_ns, checkpoint_id) NOT IN ({latest})",
                    (thread_id, thread_id),
                )
            conn.execute("UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = ?", (thread_id,))
