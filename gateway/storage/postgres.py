"""The scale-out backend: threads, runs (the queue), assistants and the event log in Postgres,
through psycopg 3's async pool, beside the checkpoints of LangGraph's Postgres saver on the
same pool. Any number of processes share it.

A thread's decisions are serialised by its row: admission locks it (`FOR UPDATE`), claims lock
it too but skip threads another process holds (`SKIP LOCKED`), so one run of a thread runs at
a time across all processes and a strategy sees every run admitted before it. Leases are read
against the database's clock, never a process's. The schema is created and migrated at start
under an advisory lock, so processes can start together (gateway.storage.sql.postgres_schema).

The pool, and every operation on it (the storage's, the checkpointer's and the store's), lives
on an event loop of its own in a thread (gateway.process.loops). On the core's loop a connection was
held for a round trip plus the turns of that loop until its coroutine resumed: under load tens
of milliseconds per query, and a burst of a few hundred run starts and ends waited seconds for
one of the pool's connections. There, it is held for the round trip and the pool thread's
waits for the GIL.

The runs' own work (checkpoints, through LangGraph's saver, and runs' ends, claims, leases and
crons) holds at most three quarters of the pool's connections at once (`RunsLane`): the rest
stay free for requests. A stateful run on Postgres is ~9 statements, 7 of them its checkpoints
and its end; without that reserve, when runs end and start again in bursts, a new run's
admission waits behind them for a connection (docs/performance.md).

The records' reads and CRUD are the ones both SQL backends share (gateway.storage.sql.records);
this module keeps the schema, the pool, the queue (admission, claims, leases, ends of runs),
request keys and checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import psycopg
import psycopg.conninfo
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from gateway.process.loops import IoLoop, on_io_loop, public_coroutines
from gateway.process.metrics import backend_error
from gateway.shared.errors import Conflict, InvalidArgument, NotFound, Unavailable
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
    thread_config,
)
from gateway.shared.serde import json_text as _json
from gateway.storage._checkpoints import checkpoint_metadata
from gateway.storage.base import AssistantChanged, admission_change, check_admission, check_repeat, same_assistant
from gateway.storage.sql.dialect import POSTGRES
from gateway.storage.sql.postgres_schema import SCHEMA_LOCK, advisory_lock, migrate
from gateway.storage.sql.records import SqlRecords, Tx
from gateway.storage.sql.rows import run_row
from gateway.storage.sql.statements import UNFINISHED_SQL, Sql

logger = logging.getLogger("gateway.storage")


class _Tx:
    """Statements on a cursor of the pool (the shared record methods' way to it)."""

    def __init__(self, cur: AsyncCursor[Any]) -> None:
        self.cur = cur

    async def one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        await self.cur.execute(sql, args)
        return await self.cur.fetchone()

    async def all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        await self.cur.execute(sql, args)
        return await self.cur.fetchall()

    async def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        await self.cur.execute(sql, args)
        return self.cur.rowcount


class RunsLane:
    """How many of the pool's connections the runs' own work may hold at once: a request's
    statement (an admission, a read) then finds a connection while runs end in a burst, instead
    of queueing behind their checkpoints. Used on the pool's loop only."""

    def __init__(self, pool_size: int, timeout: float) -> None:
        self.size = max(1, pool_size - (pool_size + 3) // 4)
        self._slots = asyncio.Semaphore(self.size)
        self._timeout = timeout

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        # Bounded as the pool's own wait is: an unreachable server fails the caller alike.
        try:
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise PoolTimeout(f"no connection of the runs' lane came free in {self._timeout} s") from None
        try:
            yield
        finally:
            self._slots.release()


_SQL = Sql(POSTGRES)
_RUN_COLUMNS = _SQL.runs
_UNFINISHED_RUNS = _SQL.unfinished_runs
_LOCK_THREAD = "SELECT metadata, config FROM gw_threads WHERE thread_id = %s FOR UPDATE"


def _reason(exc: Exception) -> str:
    # libpq's messages span lines (the failure, then an indented hint): one line, all of it.
    text = "; ".join(" ".join(line.split()) for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


# A run admitted, claimed by `owner` (leased) or not.
_RUN_VALUES = (
    "%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s::jsonb, %s, %s, %s, "
    "CASE WHEN %s::text IS NOT NULL THEN now() + make_interval(secs => %s) END"
)
_INTO_RUNS = f"INSERT INTO gw_runs ({_SQL.names(_RUN_COLUMNS)}, request, owner, lease_until)"
_INSERT_RUN = f"{_INTO_RUNS} VALUES ({_RUN_VALUES})"

# A stateless run's new thread (busy) and the run, in one statement.
_INTO_THREADS = f"INSERT INTO gw_threads ({_SQL.names(_SQL.threads)})"
_NEW_THREAD_VALUES = "%s, %s, %s, %s, %s::jsonb, 'busy', %s::jsonb, 'null'::json, '{}'::json, 'null'::json"
_ADMIT_ON_NEW_THREAD = f"WITH thread AS ({_INTO_THREADS} VALUES ({_NEW_THREAD_VALUES})) {_INSERT_RUN}"
# The same, only while the run's assistant is as it was read: else no row.
_SAME_ASSISTANT = _SQL.same_assistant
_ADMIT_ON_NEW_THREAD_IF_SAME = (
    f"WITH same AS ({_SAME_ASSISTANT}), thread AS ({_INTO_THREADS} SELECT {_NEW_THREAD_VALUES} FROM same) "
    f"{_INTO_RUNS} SELECT {_RUN_VALUES} FROM same"
)


def _run_values(run: RunRecord, request: bytes, owner: str | None, lease_seconds: float) -> tuple[Any, ...]:
    return (*_SQL.run_values(run), request, owner, owner, lease_seconds)


class PooledPostgresSaver(AsyncPostgresSaver):
    """LangGraph's Postgres saver over a pool: its lock exists to share one connection, and a
    pool hands each operation its own, so concurrent runs do not queue behind one another.
    Made on the pool's loop, where its operations run (its sync methods hand over to it), with
    the storage's way to a connection in the runs' lane of the pool."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        io: IoLoop,
        connection: Callable[[], AbstractAsyncContextManager[AsyncConnection[Any]]],
    ) -> None:
        super().__init__(pool)  # type: ignore[arg-type]
        self.io = io
        self._connection = connection

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await super().aput(config, checkpoint, checkpoint_metadata(config, metadata), new_versions)  # type: ignore[arg-type]

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[Any]]:
        async with self._connection() as conn:
            if pipeline:
                async with conn.pipeline(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            else:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur


# Every operation of LangGraph's saver runs on the pool's loop.
on_io_loop(*public_coroutines(AsyncPostgresSaver))(PooledPostgresSaver)


class PostgresStorage(SqlRecords):
    sql = _SQL

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.io = IoLoop("postgres-io")
        self._pool = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            # A call waits this long for a connection, then fails (UNAVAILABLE / 503) rather
            # than hang while the server is unreachable.
            timeout=5.0,
            # As the checkpointer needs them: autocommit, no server-side prepared statements
            # (poolers such as pgbouncer forbid them), dict rows for its own queries.
            kwargs={"autocommit": True, "prepare_threshold": None, "row_factory": dict_row},
        )
        self.runs_lane = RunsLane(max_size, timeout=self._pool.timeout)
        self._saver: PooledPostgresSaver | None = None

    @property
    def checkpointer(self) -> PooledPostgresSaver:
        if self._saver is None:
            raise RuntimeError("storage is not set up")
        return self._saver

    @property
    def pool(self) -> AsyncConnectionPool:
        """The pool, which the store shares."""
        return self._pool

    async def setup(self) -> None:
        self.io.start()
        try:
            await self.io.run(self._setup())
        except BaseException:
            await self.close()
            raise

    async def _setup(self) -> None:
        # One connection first: a server that cannot be reached is one clear error, not the
        # pool's retries.
        try:
            probe = await AsyncConnection.connect(self.url, connect_timeout=10)
        except psycopg.Error as exc:
            where = psycopg.conninfo.conninfo_to_dict(self.url)
            target = f"{where.get('host', 'localhost')}:{where.get('port', 5432)}/{where.get('dbname', '')}"
            raise Unavailable(f"cannot connect to Postgres at {target}: {_reason(exc)}") from None
        await probe.close()
        await self._pool.open(wait=True, timeout=30)
        async with self._pool.connection() as conn:
            async with advisory_lock(conn, SCHEMA_LOCK):
                await migrate(conn)
                saver = PooledPostgresSaver(self._pool, self.io, functools.partial(self._connection, True))
                await saver.setup()
                self._saver = saver

    async def close(self) -> None:
        try:
            await self.io.run(self._pool.close())
        finally:
            self.io.stop()

    @asynccontextmanager
    async def _connection(self, runs: bool) -> AsyncIterator[AsyncConnection[Any]]:
        """A connection of the pool; `runs`: for the runs' own work, in their lane."""
        async with contextlib.AsyncExitStack() as stack:
            if runs:
                await stack.enter_async_context(self.runs_lane())
            yield await stack.enter_async_context(self._pool.connection())

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (psycopg.OperationalError, PoolTimeout) as exc:
            backend_error("postgres")
            raise Unavailable(f"the database is unreachable: {_reason(exc)}") from None
        except psycopg.DataError as exc:
            # What a client sent and Postgres cannot hold (a NUL character in a JSON string).
            raise InvalidArgument(f"the request holds a value the database cannot store: {_reason(exc)}") from None

    @asynccontextmanager
    async def _cursor(self, *, runs: bool = False) -> AsyncIterator[AsyncCursor[Any]]:
        with self._errors():
            async with self._connection(runs) as conn, conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
                yield cur

    @asynccontextmanager
    async def _transaction(self, *, pipeline: bool = False, runs: bool = False) -> AsyncIterator[AsyncCursor[Any]]:
        """`pipeline`: statements go out without waiting for the previous one's answer, which
        comes when a result is fetched (or at the commit): a transaction of a few statements
        whose results are read once costs two round trips instead of one per statement."""
        with self._errors():
            async with self._connection(runs) as conn, contextlib.AsyncExitStack() as stack:
                if pipeline:
                    await stack.enter_async_context(conn.pipeline())
                async with conn.transaction(), conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
                    yield cur

    @asynccontextmanager
    async def _session(self, *, runs: bool = False) -> AsyncIterator[Tx]:
        async with self._cursor(runs=runs) as cur:
            yield _Tx(cur)

    @asynccontextmanager
    async def _atomic(self) -> AsyncIterator[Tx]:
        async with self._transaction() as cur:
            yield _Tx(cur)

    async def _search(self, sql: str, args: Sequence[Any]) -> list[Any]:
        return await self._all(sql, args)

    # Threads

    async def create_thread(self, thread: ThreadRecord, *, request_key: RequestKey | None = None) -> bool:
        async with self._transaction() as cur:
            if request_key is not None:
                await self._claim_key(cur, request_key, thread.thread_id, thread.thread_id)
            if await self._insert_thread(cur, thread):
                return True
            if request_key is not None:
                # No thread made: the key is not this request's to keep.
                await cur.execute(
                    "DELETE FROM gw_request_keys WHERE caller = %s AND request_id = %s",
                    (request_key.caller, request_key.request_id),
                )
            return False

    # Request keys

    @staticmethod
    async def _claim_key(cur: AsyncCursor[Any], key: RequestKey, resource_id: str, thread_id: str) -> None:
        """Stores the key, first in its transaction: a concurrent one with the same key waits
        at this insert until this transaction ends, then finds the key (or, if it rolled back,
        stores it)."""
        await cur.execute(
            "INSERT INTO gw_request_keys AS k VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s)) "
            "ON CONFLICT (caller, request_id) DO UPDATE SET body = EXCLUDED.body, "
            "resource_id = EXCLUDED.resource_id, thread_id = EXCLUDED.thread_id, expires_at = EXCLUDED.expires_at "
            "WHERE k.expires_at <= now() RETURNING 1",
            (key.caller, key.request_id, key.body, resource_id, thread_id, key.window),
        )
        if await cur.fetchone() is not None:
            return
        await cur.execute(
            "SELECT body, resource_id, thread_id FROM gw_request_keys WHERE caller = %s AND request_id = %s",
            (key.caller, key.request_id),
        )
        row = await cur.fetchone()
        if row is None:
            raise Conflict(f"request_id {key.request_id} expired while it was being used; try again.")
        check_repeat(key, *row)

    async def prune_request_keys(self) -> int:
        async with self._cursor(runs=True) as cur:
            await cur.execute("DELETE FROM gw_request_keys WHERE expires_at <= now()")
            return cur.rowcount

    @staticmethod
    async def _insert_thread(cur: AsyncCursor[Any], thread: ThreadRecord) -> bool:
        await cur.execute(*_SQL.insert_thread(thread))
        # Fetched, not counted: in a pipeline, a fetch is what waits for the answer.
        return await cur.fetchone() is not None

    async def _copy_checkpoints(self, tx: Tx, thread_id: str, copy_id: str) -> None:
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            rows = await tx.all(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = %s AND column_name <> 'thread_id' ORDER BY ordinal_position",
                (table,),
            )
            columns = [r[0] for r in rows]
            chosen = [
                # The copy's checkpoints name the copy as their thread.
                "CASE WHEN metadata ? 'thread_id' THEN jsonb_set(metadata, '{thread_id}', to_jsonb(%s::text)) "
                "ELSE metadata END"
                if table == "checkpoints" and column == "metadata"
                else column
                for column in columns
            ]
            values = (copy_id, copy_id, thread_id) if table == "checkpoints" else (copy_id, thread_id)
            await tx.run(
                f"INSERT INTO {table} (thread_id, {', '.join(columns)}) SELECT %s, {', '.join(chosen)} "
                f"FROM {table} WHERE thread_id = %s",
                values,
            )

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
        thread_id, metadata = run.thread_id, {**(new_thread_metadata or {}), **thread_metadata}
        if new_thread and request_key is None:
            chosen = (claim_as, lease_seconds, assistant_config, assistant)
            return await self._admit_on_new_thread(run, request, metadata, *chosen)
        async with (
            self._transaction(pipeline=True) as cur,
            cur.connection.cursor(row_factory=psycopg.rows.tuple_row) as runs,
            cur.connection.cursor(row_factory=psycopg.rows.tuple_row) as same,
        ):
            # One round trip for the assistant's check, the thread, locked, and its unfinished
            # runs (read once the lock is held), one for the rest and the commit.
            if request_key is not None:
                await self._claim_key(cur, request_key, run.run_id, thread_id)
            if assistant is not None:
                await same.execute(_SAME_ASSISTANT, same_assistant(assistant))
            await cur.execute(_LOCK_THREAD, (thread_id,))
            await runs.execute(_UNFINISHED_RUNS, (thread_id,))
            if assistant is not None and await same.fetchone() is None:
                raise AssistantChanged(assistant.assistant_id)
            row = await cur.fetchone()
            unfinished: list[str] = [r[0] for r in await runs.fetchall()]
            if row is not None and access is not None and not await self._visible(_Tx(cur), thread_id, access):
                # Another caller's thread: as if there were none, whether or not one may be created.
                raise NotFound(f"Thread {thread_id} not found.", resource="thread", id=thread_id)
            if row is None:
                if if_not_exists != "create":
                    raise NotFound(f"Thread {thread_id} not found.", resource="thread", id=thread_id)
                row, unfinished = await self._thread_for_run(cur, runs, thread_id, metadata)
            check_admission(run, unfinished, max_unfinished)
            change = admission_change(run, row[0], row[1], thread_metadata, assistant_config, unfinished)
            claimed = claim_as is not None and not unfinished
            if claimed:
                run.status, run.attempt = "running", 1
            await cur.execute(_INSERT_RUN, _run_values(run, request, claim_as if claimed else None, lease_seconds))
            await cur.execute(*_SQL.change_thread(thread_id, change))
        cancel = unfinished if run.multitask_strategy in ("interrupt", "rollback") else []
        return Admission(cancel, claimed)

    async def _thread_for_run(
        self, cur: AsyncCursor[Any], runs: AsyncCursor[Any], thread_id: str, metadata: dict[str, Any]
    ) -> tuple[Any, list[str]]:
        """Creates the run's thread, or locks the one another process created first: its
        metadata and config, and its unfinished runs."""
        now = now_iso()
        thread = ThreadRecord(thread_id, now, now, now, metadata)
        if await self._insert_thread(cur, thread):
            # Ours, locked by the insert, and without runs: nothing more to read.
            return (thread.metadata, thread.config), []
        await cur.execute(_LOCK_THREAD, (thread_id,))
        await runs.execute(_UNFINISHED_RUNS, (thread_id,))
        row = await cur.fetchone()
        return row, [r[0] for r in await runs.fetchall()]

    async def _admit_on_new_thread(
        self,
        run: RunRecord,
        request: bytes,
        metadata: dict[str, Any],
        claim_as: str | None,
        lease_seconds: float,
        assistant_config: dict[str, Any] | None,
        assistant: AssistantRecord | None,
    ) -> Admission:
        """A stateless run's admission: its thread and itself in one statement (one round trip
        instead of a transaction's six), as nothing else can hold a thread id just made; with
        `assistant`, only if it is unchanged (nothing is inserted otherwise)."""
        now = now_iso()
        run_config = {k: v for k, v in (run.kwargs.get("config") or {}).items() if k != "configurable"}
        config = thread_config(assistant_config, {}, run_config) if assistant_config is not None else {}
        claimed = claim_as is not None
        status, attempt = run.status, run.attempt
        if claimed:
            run.status, run.attempt = "running", 1
        thread = (run.thread_id, now, now, now, _json(metadata), _json(config))
        values = _run_values(run, request, claim_as, lease_seconds)
        if assistant is None:
            await self._run(_ADMIT_ON_NEW_THREAD, (*thread, *values))
        elif not await self._run(_ADMIT_ON_NEW_THREAD_IF_SAME, (*same_assistant(assistant), *thread, *values)):
            run.status, run.attempt = status, attempt
            raise AssistantChanged(assistant.assistant_id)
        return Admission([], claimed)

    async def claim_runs(self, owner: str, limit: int, lease_seconds: float) -> list[Claim]:
        if limit <= 0:
            return []
        async with self._transaction(runs=True) as cur:
            # Threads with a pending run and none running, not held by another process's
            # admission or claim at this moment; then the oldest pending run of each.
            await cur.execute(
                "SELECT t.thread_id FROM gw_threads AS t JOIN ("
                "  SELECT thread_id, min(created_at) AS first FROM gw_runs WHERE status = 'pending' GROUP BY thread_id"
                ") AS p USING (thread_id) "
                "WHERE NOT EXISTS (SELECT 1 FROM gw_runs AS r WHERE r.thread_id = t.thread_id AND r.status = 'running') "
                "ORDER BY p.first, t.thread_id LIMIT %s FOR UPDATE OF t SKIP LOCKED",
                (limit,),
            )
            threads = [row[0] for row in await cur.fetchall()]
            claims: list[Claim] = []
            for thread_id in threads:
                if len(claims) >= limit:
                    break
                await cur.execute(
                    f"UPDATE gw_runs SET status = 'running', updated_at = %s, attempt = attempt + 1, owner = %s, "
                    "lease_until = now() + make_interval(secs => %s) WHERE run_id = ("
                    "  SELECT run_id FROM gw_runs WHERE thread_id = %s AND status = 'pending'"
                    "  AND NOT EXISTS (SELECT 1 FROM gw_runs WHERE thread_id = %s AND status = 'running')"
                    "  ORDER BY created_at, run_id LIMIT 1"
                    f") RETURNING {_RUN_COLUMNS}, request",
                    (now_iso(), owner, lease_seconds, thread_id, thread_id),
                )
                row = await cur.fetchone()
                if row is not None:
                    claims.append(Claim(run_row(row), bytes(row[10] or b"{}")))
        return claims

    async def renew_leases(self, owner: str, run_ids: Sequence[str], lease_seconds: float) -> list[str]:
        if not run_ids:
            return []
        rows = await self._all(
            "UPDATE gw_runs SET lease_until = now() + make_interval(secs => %s) "
            "WHERE run_id = ANY(%s) AND owner = %s AND status = 'running' RETURNING run_id",
            (lease_seconds, list(run_ids), owner),
            runs=True,
        )
        held = {row[0] for row in rows}
        return [run_id for run_id in run_ids if run_id not in held]

    async def expire_leases(
        self, max_attempts: int, *, all_running: bool = False
    ) -> tuple[list[RunRecord], list[RunRecord]]:
        expired = "status = 'running' AND (%s OR lease_until IS NULL OR lease_until < now())"
        async with self._transaction(runs=True) as cur:
            # The threads first, as admission and finish_run lock them: the same order.
            await cur.execute(
                f"SELECT 1 FROM gw_threads WHERE thread_id IN (SELECT thread_id FROM gw_runs WHERE {expired}) "
                "ORDER BY thread_id FOR UPDATE",
                (all_running,),
            )
            await cur.execute(
                "UPDATE gw_runs SET status = CASE WHEN attempt < %s THEN 'pending' ELSE 'error' END, "
                f"owner = NULL, lease_until = NULL, updated_at = %s WHERE {expired} RETURNING {_RUN_COLUMNS}",
                (max_attempts, now_iso(), all_running),
            )
            runs = [run_row(row) for row in await cur.fetchall()]
            failed = [r for r in runs if r.status == "error"]
            for run in failed:
                change = ThreadChange(status="error", error=lost_run_error(run.attempt))
                await cur.execute(
                    f"SELECT 1 FROM gw_runs WHERE thread_id = %s AND {UNFINISHED_SQL} LIMIT 1", (run.thread_id,)
                )
                if await cur.fetchone() is not None:
                    change.status = "busy"
                await cur.execute(*_SQL.change_thread(run.thread_id, change))
        return [r for r in runs if r.status == "pending"], failed

    async def release_runs(self, owner: str, run_ids: Sequence[str]) -> list[RunRecord]:
        if not run_ids:
            return []
        rows = await self._all(
            "UPDATE gw_runs SET status = 'pending', attempt = attempt - 1, owner = NULL, lease_until = NULL "
            f"WHERE run_id = ANY(%s) AND owner = %s AND status = 'running' RETURNING {_RUN_COLUMNS}",
            (list(run_ids), owner),
            runs=True,
        )
        return [run_row(row) for row in rows]

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
        condition = "run_id = %s AND status = ANY(%s)"
        args: list[Any] = [run_id, list(expect)]
        if owner is not None:
            condition += " AND owner = %s AND attempt = %s"
            args += [owner, attempt]
        if delete_thread:
            # A temporary thread goes with its run, as on the Agent Server: one statement, the
            # thread locked first (as admission locks it), then the run if it is still this
            # caller's to end, then the rest.
            rows = await self._all(
                "WITH lock AS (SELECT thread_id FROM gw_threads WHERE thread_id = %s FOR UPDATE), "
                f"mine AS (DELETE FROM gw_runs WHERE {condition} AND EXISTS (SELECT 1 FROM lock) RETURNING run_id), "
                "others AS (DELETE FROM gw_runs WHERE thread_id = %s AND run_id <> %s "
                "AND EXISTS (SELECT 1 FROM mine)), "
                "thread AS (DELETE FROM gw_threads WHERE thread_id = %s AND EXISTS (SELECT 1 FROM mine)) "
                "SELECT count(*) FROM mine",
                (thread_id, *args, thread_id, run_id, thread_id),
                runs=True,
            )
            return bool(rows[0][0])
        if status is None:
            ended = f"DELETE FROM gw_runs WHERE {condition} RETURNING run_id"
        else:
            ended = (
                "UPDATE gw_runs SET status = %s, updated_at = %s, owner = NULL, lease_until = NULL "
                f"WHERE {condition} RETURNING run_id"
            )
            args = [status, now_iso(), *args]
        sets, values = _SQL.thread_sets(change, keep_status=True)
        async with self._transaction(pipeline=True, runs=True) as cur:
            # The thread first, as admission locks it: the same order, no deadlock. The next
            # statement's snapshot is taken once the lock is held, so it sees every run admitted
            # before: the thread stays busy while one waits.
            await cur.execute("SELECT 1 FROM gw_threads WHERE thread_id = %s FOR UPDATE", (thread_id,))
            await cur.execute(
                f"WITH ended AS ({ended}) UPDATE gw_threads SET {sets}, status = CASE WHEN EXISTS "
                f"(SELECT 1 FROM gw_runs WHERE thread_id = %s AND run_id <> %s AND {UNFINISHED_SQL}) THEN 'busy' "
                "ELSE coalesce(%s::text, status) END WHERE thread_id = %s AND EXISTS (SELECT 1 FROM ended) RETURNING 1",
                (*args, *values, thread_id, run_id, change.status, thread_id),
            )
            return await cur.fetchone() is not None

    async def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        async with self._cursor(runs=True) as cur:
            await cur.executemany(
                "INSERT INTO gw_run_events (run_id, seq, name, ns, data) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                [(run_id, e.seq, e.name, "|".join(e.ns), e.data) for e in events],
            )

    async def prune_events(self, older_than: float) -> int:
        async with self._cursor(runs=True) as cur:
            await cur.execute(
                "DELETE FROM gw_run_events WHERE created_at < now() - make_interval(secs => %s)", (older_than,)
            )
            return cur.rowcount

    # Checkpoints

    async def delete_run_checkpoints(self, thread_id: str, run_id: str) -> None:
        async with self._transaction(runs=True) as cur:
            found = "thread_id = %s AND metadata ->> 'run_id' = %s"
            await cur.execute(
                "DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_id IN "
                f"(SELECT checkpoint_id FROM checkpoints WHERE {found})",
                (thread_id, thread_id, run_id),
            )
            await cur.execute(f"DELETE FROM checkpoints WHERE {found}", (thread_id, run_id))

    async def delete_thread_checkpoints(self, thread_id: str) -> None:
        await self.checkpointer.adelete_thread(thread_id)

    async def keep_latest_checkpoints(self, thread_id: str) -> None:
        latest = "SELECT checkpoint_ns, max(checkpoint_id) FROM checkpoints WHERE thread_id = %s GROUP BY checkpoint_ns"
        async with self._transaction() as cur:
            for table in ("checkpoint_writes", "checkpoints"):
                await cur.execute(
                    f"DELETE FROM {table} WHERE thread_id = %s AND (checkpoint_ns, checkpoint_id) NOT IN ({latest})",
                    (thread_id, thread_id),
                )
            await cur.execute("UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = %s", (thread_id,))
            # Channel values no kept checkpoint refers to.
            await cur.execute(
                "DELETE FROM checkpoint_blobs AS b WHERE b.thread_id = %s AND NOT EXISTS (SELECT 1 FROM checkpoints "
                "AS c WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns "
                "AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)",
                (thread_id,),
            )


# Every operation runs on the pool's loop, wherever it is called from.
on_io_loop(*public_coroutines(SqlRecords), *public_coroutines(PostgresStorage, but=("setup", "close")))(PostgresStorage)
