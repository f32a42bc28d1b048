"""The default backend: threads, runs, assistants and the event log in one sqlite file (WAL
mode), beside the LangGraph checkpoints that the checkpointer keeps in the same file.

Every statement, ours and the checkpointer's, runs on the event loop's thread, on one
connection, under one lock, and no transaction spans an `await`. A statement on a local sqlite
file in WAL mode takes microseconds; a hop to a worker thread and back (aiosqlite) costs a full
turn of the event loop, and under load a stateful run made a dozen of them. The methods are
`async` for the protocol's sake (the Postgres backend awaits its server) but never suspend, so
a method is atomic with respect to every other coroutine, and a multi-statement write is also
one sqlite transaction (`_write`), which no checkpointer statement can join.

The records' reads and CRUD are the ones both SQL backends share (gateway.storage.sql.records),
run here through `_session` and `_atomic`, whose statements never suspend either; this module
keeps the schema, the connection, the queue (admission, claims, leases, ends of runs), request
keys and checkpoints.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointTuple
from langgraph.checkpoint.sqlite import SqliteSaver

from gateway.shared.errors import NotFound, TimedOut
from gateway.shared.limits import MAX_SEARCH_SECONDS
from gateway.shared.records import (
    UNFINISHED,
    AccessFilter,
    Admission,
    AssistantRecord,
    Claim,
    Event,
    IfNotExists,
    RequestKey,
    RunRecord,
    RunStatus,
    ThreadChange,
    ThreadRecord,
    lost_run_error,
    now_iso,
)
from gateway.storage._checkpoints import checkpoint_metadata
from gateway.storage._owner import FileOwner
from gateway.storage.base import AssistantChanged, admission_change, check_admission, check_repeat, same_assistant
from gateway.storage.sql.dialect import SQLITE
from gateway.storage.sql.records import SqlRecords, Tx
from gateway.storage.sql.rows import run_row
from gateway.storage.sql.sqlite_schema import migrate
from gateway.storage.sql.statements import UNFINISHED_SQL, Sql

# Virtual machine steps between two looks at a search's deadline (about a millisecond's worth).
_PROGRESS_STEPS = 10_000
_SQL = Sql(SQLITE)
_RUN_COLUMNS = _SQL.runs
_INSERT_RUN = f"INSERT INTO gw_runs ({_RUN_COLUMNS}, request, owner, lease_until) VALUES ({', '.join('?' * 13)})"


class _Tx:
    """Statements on the connection, under the storage's lock: they never suspend."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, args).fetchone()

    async def all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        return self.conn.execute(sql, args).fetchall()

    async def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, args).rowcount


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


class SqliteStorage(SqlRecords):
    sql = _SQL

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
        migrate(conn)
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

    @asynccontextmanager
    async def _session(self, *, runs: bool = False) -> AsyncIterator[Tx]:
        with self._lock:
            yield _Tx(self.conn)

    @asynccontextmanager
    async def _atomic(self) -> AsyncIterator[Tx]:
        with self._write() as conn:
            yield _Tx(conn)

    async def _search(self, sql: str, args: Sequence[Any]) -> list[Any]:
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

    async def _copy_checkpoints(self, tx: Tx, thread_id: str, copy_id: str) -> None:
        for table in ("checkpoints", "writes"):
            columns = [r[1] for r in await tx.all(f"PRAGMA table_info({table})") if r[1] != "thread_id"]
            chosen = ", ".join(columns)
            if table == "checkpoints":
                # The copy's checkpoints name the copy as their thread.
                chosen = chosen.replace(
                    "metadata",
                    "CASE WHEN json_valid(CAST(metadata AS TEXT)) AND "
                    "json_type(CAST(metadata AS TEXT), '$.thread_id') IS NOT NULL "
                    "THEN CAST(json_set(CAST(metadata AS TEXT), '$.thread_id', ?) AS BLOB) ELSE metadata END",
                )
            values = (copy_id, thread_id) if table == "writes" else (copy_id, copy_id, thread_id)
            await tx.run(
                f"INSERT INTO {table} (thread_id, {', '.join(columns)}) SELECT ?, {chosen} FROM {table} "
                "WHERE thread_id = ?",
                values,
            )

    async def create_thread(self, thread: ThreadRecord, *, request_key: RequestKey | None = None) -> bool:
        with self._write() as conn:
            if request_key is not None:
                self._check_key(conn, request_key)
            if conn.execute(*_SQL.insert_thread(thread)).fetchone() is None:
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
        with self._write() as conn:
            if request_key is not None:
                self._check_key(conn, request_key)
            if (
                assistant is not None
                and conn.execute(_SQL.same_assistant, same_assistant(assistant)).fetchone() is None
            ):
                raise AssistantChanged(assistant.assistant_id)
            metadata = {**(new_thread_metadata or {}), **thread_metadata}
            row = self._admit_thread(conn, run.thread_id, if_not_exists, metadata, access)
            unfinished = [r[0] for r in conn.execute(_SQL.unfinished_runs, (run.thread_id,))]
            check_admission(run, unfinished, max_unfinished)
            if row is not None:
                metadata, config = orjson.loads(row[0]), orjson.loads(row[1])
            change = admission_change(
                run, metadata, config if row else {}, thread_metadata, assistant_config, unfinished
            )
            claimed = claim_as is not None and not unfinished
            if claimed:
                run.status, run.attempt = "running", 1
            lease_until = time.time() + lease_seconds if claimed else None
            conn.execute(_INSERT_RUN, (*_SQL.run_values(run), request, claim_as if claimed else None, lease_until))
            conn.execute(*_SQL.change_thread(run.thread_id, change))
            if request_key is not None:
                self._insert_key(conn, request_key, run.run_id, run.thread_id)
        cancel = unfinished if run.multitask_strategy in ("interrupt", "rollback") else []
        return Admission(cancel, claimed)

    @staticmethod
    def _admit_thread(
        conn: sqlite3.Connection,
        thread_id: str,
        if_not_exists: IfNotExists,
        metadata: dict[str, Any],
        access: AccessFilter | None,
    ) -> Any:
        """The run's thread (its metadata and config), or None for one created now (with
        `metadata`), if it may be."""
        row = conn.execute("SELECT metadata, config FROM gw_threads WHERE thread_id = ?", (thread_id,)).fetchone()
        if row is not None and access is not None:
            where, args = _SQL.by_id("thread_id", thread_id, access)
            if conn.execute(f"SELECT 1 FROM gw_threads WHERE {where}", args).fetchone() is None:
                # Another caller's thread: as if there were none, whether or not one may be created.
                raise NotFound(f"Thread {thread_id} not found.", resource="thread", id=thread_id)
        if row is None:
            if if_not_exists != "create":
                raise NotFound(f"Thread {thread_id} not found.", resource="thread", id=thread_id)
            now = now_iso()
            conn.execute(*_SQL.insert_thread(ThreadRecord(thread_id, now, now, now, metadata))).fetchone()
        return row

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
                    f"SELECT 1 FROM gw_runs WHERE thread_id = ? AND {UNFINISHED_SQL} LIMIT 1", (run.thread_id,)
                ).fetchone():
                    change.status = "busy"
                conn.execute(*_SQL.change_thread(run.thread_id, change))
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
                f"SELECT 1 FROM gw_runs WHERE thread_id = ? AND {UNFINISHED_SQL} LIMIT 1", (thread_id,)
            ).fetchone():
                change.status = "busy"
            conn.execute(*_SQL.change_thread(thread_id, change))
        return True

    async def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        now = time.time()
        rows = [(run_id, e.seq, e.name, "|".join(e.ns), e.data, now) for e in events]
        with self._write() as conn:
            conn.executemany("INSERT OR IGNORE INTO gw_run_events VALUES (?, ?, ?, ?, ?, ?)", rows)

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
