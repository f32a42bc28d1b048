"""The scale-out backend: threads, runs (the queue), assistants and the event log in Postgres,
through psycopg 3's async pool, beside the checkpoints of LangGraph's Postgres saver on the
same pool. Any number of processes share it.

A thread's decisions are serialised by its row: admission locks it (`FOR UPDATE`), claims lock
it too but skip threads another process holds (`SKIP LOCKED`), so one run of a thread runs at
a time across all processes and a strategy sees every run admitted before it. Leases are read
against the database's clock, never a process's. The schema is created and migrated at start
under an advisory lock, so processes can start together.

Graph data (`values`, `interrupts`, `error`) is kept as `json`, which keeps the text the run
produced byte for byte; metadata is `jsonb`, searched by containment (`@>`).

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
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
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
from gateway.shared.serde import json_text as _json
from gateway.storage._checkpoints import checkpoint_metadata
from gateway.storage._rows import assistant_row, cron_row, run_row, thread_row
from gateway.storage.base import AssistantChanged, check_admission, check_repeat, same_assistant

logger = logging.getLogger("gateway.storage")

# pg_advisory_lock key under which the schema is created and migrated ("lggw" in ASCII).
_SCHEMA_LOCK = 0x6C676777


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


@asynccontextmanager
async def advisory_lock(conn: AsyncConnection[Any], key: int) -> AsyncIterator[None]:
    """Holds the session-level advisory lock `key` on `conn` (an autocommit connection of the
    pool, rows as dicts), polling for it rather than
    blocking: a session blocked in `pg_advisory_lock` is an open transaction, and `CREATE INDEX
    CONCURRENTLY` (which LangGraph's savers and stores run in their setup, on another connection
    of the lock holder's pool) waits for every open transaction, so two processes starting
    together would wait on each other for ever, in a cycle Postgres cannot see."""
    delay = 0.05
    while True:
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS locked", (key,))
        row: Any = await cur.fetchone()
        if row["locked"]:
            break
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


_MIGRATIONS = (
    """
    CREATE TABLE gw_assistants (
        assistant_id text PRIMARY KEY,
        graph_id text NOT NULL,
        name text NOT NULL,
        created_at text NOT NULL,
        updated_at text NOT NULL,
        config jsonb NOT NULL,
        context jsonb NOT NULL,
        metadata jsonb NOT NULL,
        version integer NOT NULL,
        description text
    );
    CREATE TABLE gw_threads (
        thread_id text PRIMARY KEY,
        created_at text NOT NULL,
        updated_at text NOT NULL,
        state_updated_at text NOT NULL,
        metadata jsonb NOT NULL,
        status text NOT NULL,
        config jsonb NOT NULL,
        "values" json NOT NULL,
        interrupts json NOT NULL,
        error json NOT NULL
    );
    CREATE INDEX gw_threads_created ON gw_threads (created_at);
    CREATE INDEX gw_threads_metadata ON gw_threads USING gin (metadata jsonb_path_ops);
    CREATE TABLE gw_runs (
        run_id text PRIMARY KEY,
        thread_id text NOT NULL,
        assistant_id text NOT NULL,
        created_at text NOT NULL,
        updated_at text NOT NULL,
        status text NOT NULL,
        metadata jsonb NOT NULL,
        multitask_strategy text NOT NULL,
        kwargs jsonb NOT NULL,
        attempt integer NOT NULL DEFAULT 0,
        request bytea,
        owner text,
        lease_until timestamptz
    );
    CREATE INDEX gw_runs_thread ON gw_runs (thread_id, created_at, run_id);
    CREATE INDEX gw_runs_pending ON gw_runs (created_at, run_id) WHERE status = 'pending';
    CREATE INDEX gw_runs_leases ON gw_runs (lease_until) WHERE status = 'running';
    CREATE TABLE gw_run_events (
        run_id text NOT NULL,
        seq integer NOT NULL,
        name text NOT NULL,
        ns text NOT NULL,
        data bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (run_id, seq)
    );
    CREATE INDEX gw_run_events_created ON gw_run_events (created_at);
    """,
    # Assistants' versions (the system assistants stored so far are their version 1), and crons.
    """
    CREATE TABLE gw_assistant_versions (
        assistant_id text NOT NULL,
        version integer NOT NULL,
        graph_id text NOT NULL,
        name text NOT NULL,
        created_at text NOT NULL,
        config jsonb NOT NULL,
        context jsonb NOT NULL,
        metadata jsonb NOT NULL,
        description text,
        PRIMARY KEY (assistant_id, version)
    );
    INSERT INTO gw_assistant_versions
        SELECT assistant_id, version, graph_id, name, updated_at, config, context, metadata, description
        FROM gw_assistants;
    CREATE TABLE gw_crons (
        cron_id text PRIMARY KEY,
        assistant_id text NOT NULL,
        thread_id text,
        user_id text,
        schedule text NOT NULL,
        timezone text,
        end_time timestamptz,
        next_run_date timestamptz NOT NULL,
        payload jsonb NOT NULL,
        metadata jsonb NOT NULL,
        on_run_completed text,
        enabled boolean NOT NULL,
        created_at text NOT NULL,
        updated_at text NOT NULL
    );
    CREATE INDEX gw_crons_due ON gw_crons (next_run_date) WHERE enabled;
    CREATE INDEX gw_crons_thread ON gw_crons (thread_id);
    """,
    # The keys of idempotent creations (gateway.core.idempotency).
    """
    CREATE TABLE gw_request_keys (
        caller text NOT NULL,
        request_id text NOT NULL,
        body text NOT NULL,
        resource_id text NOT NULL,
        thread_id text NOT NULL,
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (caller, request_id)
    );
    CREATE INDEX gw_request_keys_expires ON gw_request_keys (expires_at);
    """,
)

# JSON comes back as text, as from sqlite: one decoding (orjson), and graph data untouched.
_THREAD_COLUMNS = (
    "thread_id, created_at, updated_at, state_updated_at, metadata::text, status, config::text, "
    '"values"::text, interrupts::text, error::text'
)
_RUN_COLUMNS = (
    "run_id, thread_id, assistant_id, created_at, updated_at, status, metadata::text, multitask_strategy, "
    "kwargs::text, attempt"
)
_ASSISTANT_COLUMNS = (
    "assistant_id, graph_id, name, created_at, updated_at, config::text, context::text, metadata::text, version, "
    "description"
)
_VERSION_COLUMNS = (
    "assistant_id, graph_id, name, created_at, created_at, config::text, context::text, metadata::text, version, "
    "description"
)
_CRON_COLUMNS = (
    "cron_id, assistant_id, thread_id, user_id, schedule, timezone, end_time, next_run_date, payload::text, "
    "metadata::text, on_run_completed, enabled, created_at, updated_at"
)
_UNFINISHED = "status IN ('pending', 'running')"
# A thread's unfinished runs, oldest first.
_UNFINISHED_RUNS = f"SELECT run_id FROM gw_runs WHERE thread_id = %s AND {_UNFINISHED} ORDER BY created_at, run_id"
_SORT_COLUMNS = {k: k for k in ("thread_id", "status", "created_at", "updated_at", "state_updated_at")}


def _names(columns: str) -> str:
    return columns.replace("::text", "")


def _reason(exc: Exception) -> str:
    # libpq's messages span lines (the failure, then an indented hint): one line, all of it.
    text = "; ".join(" ".join(line.split()) for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


def _thread_sets(change: ThreadChange, *, keep_status: bool = False) -> tuple[str, list[Any]]:
    """The SET list of an UPDATE of gw_threads that makes `change` (without its status when
    `keep_status`: the caller sets that), and its arguments."""
    names = ["updated_at = %s"]
    values: list[Any] = [now_iso()]
    for name in ("state_updated_at",) if keep_status else ("status", "state_updated_at"):
        value = getattr(change, name)
        if value is not None:
            names.append(f"{name} = %s")
            values.append(value)
    for name in ("values", "interrupts", "error"):
        data = getattr(change, name)
        if data is not None:
            names.append(f'"{name}" = %s::json')
            values.append(data.decode())
    for name in ("metadata", "config"):
        value = getattr(change, name)
        if value is not None:
            names.append(f"{name} = %s::jsonb")
            values.append(_json(value))
    return ", ".join(names), values


# A run admitted, claimed by `owner` (leased) or not.
_RUN_VALUES = (
    "%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s::jsonb, %s, %s, %s, "
    "CASE WHEN %s::text IS NOT NULL THEN now() + make_interval(secs => %s) END"
)
_INTO_RUNS = f"INSERT INTO gw_runs ({_names(_RUN_COLUMNS)}, request, owner, lease_until)"
_INSERT_RUN = f"{_INTO_RUNS} VALUES ({_RUN_VALUES})"

# A stateless run's new thread (busy) and the run, in one statement.
_INTO_THREADS = f"INSERT INTO gw_threads ({_names(_THREAD_COLUMNS)})"
_NEW_THREAD_VALUES = "%s, %s, %s, %s, %s::jsonb, 'busy', %s::jsonb, 'null'::json, '{}'::json, 'null'::json"
_ADMIT_ON_NEW_THREAD = f"WITH thread AS ({_INTO_THREADS} VALUES ({_NEW_THREAD_VALUES})) {_INSERT_RUN}"
# The same, only while the run's assistant is as it was read: else no row.
_SAME_ASSISTANT = "SELECT 1 FROM gw_assistants WHERE assistant_id = %s AND version = %s AND updated_at = %s"
_ADMIT_ON_NEW_THREAD_IF_SAME = (
    f"WITH same AS ({_SAME_ASSISTANT}), thread AS ({_INTO_THREADS} SELECT {_NEW_THREAD_VALUES} FROM same) "
    f"{_INTO_RUNS} SELECT {_RUN_VALUES} FROM same"
)


def _run_values(run: RunRecord, request: bytes, owner: str | None, lease_seconds: float) -> tuple[Any, ...]:
    return (
        run.run_id,
        run.thread_id,
        run.assistant_id,
        run.created_at,
        run.updated_at,
        run.status,
        _json(run.metadata),
        run.multitask_strategy,
        _json(run.kwargs),
        run.attempt,
        request,
        owner,
        owner,
        lease_seconds,
    )


def _access(column: str, access: AccessFilter) -> tuple[str, list[Any]]:
    """A condition on the jsonb object in `column` that holds where `access.allows` it:
    containment (`@>`), which compares JSON values as jsonb does (1 equals 1.0, true is not 1)."""
    parts: list[str] = []
    args: list[Any] = []
    for condition in access.conditions:
        if isinstance(condition, Equals):
            parts.append(f"{column} @> %s::jsonb")
            args.append(_json({condition.key: condition.value}))
        else:
            parts.append(f"(jsonb_typeof({column} -> %s) = 'array' AND {column} -> %s @> %s::jsonb)")
            args += [condition.key, condition.key, _json(list(condition.values))]
    if access.any_of:
        groups = [_access(column, group) for group in access.any_of]
        parts.append("(" + " OR ".join(sql for sql, _ in groups) + ")")
        for _, group_args in groups:
            args += group_args
    for group in access.all_of:
        sql, group_args = _access(column, group)
        parts.append(sql)
        args += group_args
    return ("(" + " AND ".join(parts) + ")") if parts else "TRUE", args


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
        clauses.append("status = %s")
        args.append(where.status)
    if where.ids is not None:
        clauses.append("thread_id = ANY(%s)")
        args.append(list(where.ids))
    if where.metadata:
        clauses.append("metadata @> %s::jsonb")
        args.append(_json(where.metadata))
    if where.values:
        clauses.append('"values"::jsonb @> %s::jsonb')
        args.append(_json(where.values))
    _access_clause("metadata", where.access, clauses, args)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _assistant_where(where: AssistantFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if where.graph_id is not None:
        clauses.append("graph_id = %s")
        args.append(where.graph_id)
    if where.name is not None:
        clauses.append("strpos(lower(name), lower(%s)) > 0")
        args.append(where.name)
    if where.metadata:
        clauses.append("metadata @> %s::jsonb")
        args.append(_json(where.metadata))
    _access_clause("metadata", where.access, clauses, args)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _assistant_order(sort_by: str, descending: bool) -> str:
    column = f"lower({sort_by})" if sort_by in ("name", "graph_id") else sort_by
    direction = "DESC" if descending else "ASC"
    return f'{column} COLLATE "C" {direction}, assistant_id COLLATE "C" {direction}'


def _cron_where(where: CronFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for column in ("assistant_id", "thread_id"):
        if getattr(where, column) is not None:
            clauses.append(f"{column} = %s")
            args.append(getattr(where, column))
    if where.enabled is not None:
        clauses.append("enabled = %s")
        args.append(where.enabled)
    if where.metadata:
        clauses.append("metadata @> %s::jsonb")
        args.append(_json(where.metadata))
    _access_clause("metadata", where.access, clauses, args)
    if where.thread_access is not None:
        sql, values = _access("t.metadata", where.thread_access)
        clauses.append(
            f"(gw_crons.thread_id IS NULL OR EXISTS (SELECT 1 FROM gw_threads AS t "
            f"WHERE t.thread_id = gw_crons.thread_id AND {sql}))"
        )
        args.extend(values)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


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


class PostgresStorage:
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
            async with advisory_lock(conn, _SCHEMA_LOCK):
                await conn.execute("CREATE TABLE IF NOT EXISTS gw_schema (version integer NOT NULL)")
                cur = await conn.execute("SELECT max(version) AS v FROM gw_schema")
                row: Any = await cur.fetchone()
                version = -1 if row is None or row["v"] is None else int(row["v"])
                for number, migration in enumerate(_MIGRATIONS):
                    if number > version:
                        async with conn.transaction():
                            await conn.execute(migration)
                            await conn.execute("INSERT INTO gw_schema (version) VALUES (%s)", (number,))
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

    @asynccontextmanager
    async def _cursor(self, *, runs: bool = False) -> AsyncIterator[AsyncCursor[Any]]:
        try:
            async with self._connection(runs) as conn, conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
                yield cur
        except (psycopg.OperationalError, PoolTimeout) as exc:
            backend_error("postgres")
            raise Unavailable(f"the database is unreachable: {_reason(exc)}") from None
        except psycopg.DataError as exc:
            # What a client sent and Postgres cannot hold (a NUL character in a JSON string).
            raise InvalidArgument(f"the request holds a value the database cannot store: {_reason(exc)}") from None

    @asynccontextmanager
    async def _transaction(self, *, pipeline: bool = False, runs: bool = False) -> AsyncIterator[AsyncCursor[Any]]:
        """`pipeline`: statements go out without waiting for the previous one's answer, which
        comes when a result is fetched (or at the commit): a transaction of a few statements
        whose results are read once costs two round trips instead of one per statement."""
        try:
            async with self._connection(runs) as conn, contextlib.AsyncExitStack() as stack:
                if pipeline:
                    await stack.enter_async_context(conn.pipeline())
                async with conn.transaction(), conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
                    yield cur
        except (psycopg.OperationalError, PoolTimeout) as exc:
            backend_error("postgres")
            raise Unavailable(f"the database is unreachable: {_reason(exc)}") from None
        except psycopg.DataError as exc:
            # What a client sent and Postgres cannot hold (a NUL character in a JSON string).
            raise InvalidArgument(f"the request holds a value the database cannot store: {_reason(exc)}") from None

    async def _execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        async with self._cursor() as cur:
            await cur.execute(sql, args)
            return cur.rowcount

    async def _all(self, sql: str, args: Sequence[Any] = (), *, runs: bool = False) -> list[Any]:
        async with self._cursor(runs=runs) as cur:
            await cur.execute(sql, args)
            return await cur.fetchall()

    async def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        async with self._cursor() as cur:
            await cur.execute(sql, args)
            return await cur.fetchone()

    # Assistants

    @staticmethod
    async def _insert_assistant(cur: AsyncCursor[Any], assistant: AssistantRecord) -> bool:
        await cur.execute(
            f"INSERT INTO gw_assistants ({_names(_ASSISTANT_COLUMNS)}) VALUES "
            "(%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, %s, %s) ON CONFLICT DO NOTHING",
            (
                assistant.assistant_id,
                assistant.graph_id,
                assistant.name,
                assistant.created_at,
                assistant.updated_at,
                _json(assistant.config),
                _json(assistant.context),
                _json(assistant.metadata),
                assistant.version,
                assistant.description,
            ),
        )
        inserted = cur.rowcount == 1
        if inserted:
            await PostgresStorage._insert_version(cur, assistant)
        return inserted

    @staticmethod
    async def _insert_version(cur: AsyncCursor[Any], assistant: AssistantRecord) -> None:
        await cur.execute(
            "INSERT INTO gw_assistant_versions (assistant_id, version, graph_id, name, created_at, config, context, "
            "metadata, description) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, %s) "
            "ON CONFLICT DO NOTHING",
            (
                assistant.assistant_id,
                assistant.version,
                assistant.graph_id,
                assistant.name,
                assistant.updated_at,
                _json(assistant.config),
                _json(assistant.context),
                _json(assistant.metadata),
                assistant.description,
            ),
        )

    @staticmethod
    async def _visible_assistant(
        cur: AsyncCursor[Any], assistant_id: str, access: AccessFilter | None, *, lock: bool = False
    ) -> AssistantRecord | None:
        where, args = ["assistant_id = %s"], [assistant_id]
        _access_clause("metadata", access, where, args)
        suffix = " FOR UPDATE" if lock else ""
        await cur.execute(f"SELECT {_ASSISTANT_COLUMNS} FROM gw_assistants WHERE {' AND '.join(where)}{suffix}", args)
        row = await cur.fetchone()
        return None if row is None else assistant_row(row)

    @staticmethod
    async def _make_latest(cur: AsyncCursor[Any], assistant: AssistantRecord) -> None:
        await cur.execute(
            "UPDATE gw_assistants SET graph_id = %s, name = %s, updated_at = %s, config = %s::jsonb, "
            "context = %s::jsonb, metadata = %s::jsonb, version = %s, description = %s WHERE assistant_id = %s",
            (
                assistant.graph_id,
                assistant.name,
                assistant.updated_at,
                _json(assistant.config),
                _json(assistant.context),
                _json(assistant.metadata),
                assistant.version,
                assistant.description,
                assistant.assistant_id,
            ),
        )

    async def put_assistant(self, assistant: AssistantRecord) -> AssistantRecord:
        async with self._transaction() as cur:
            await self._insert_assistant(cur, assistant)
            stored = await self._visible_assistant(cur, assistant.assistant_id, None)
            assert stored is not None
            return stored

    async def create_assistant(self, assistant: AssistantRecord) -> bool:
        async with self._transaction() as cur:
            return await self._insert_assistant(cur, assistant)

    async def get_assistant(self, assistant_id: str, *, access: AccessFilter | None = None) -> AssistantRecord | None:
        async with self._cursor() as cur:
            return await self._visible_assistant(cur, assistant_id, access)

    async def update_assistant(
        self, assistant_id: str, change: AssistantChange, *, access: AccessFilter | None = None
    ) -> AssistantRecord | None:
        async with self._transaction() as cur:
            current = await self._visible_assistant(cur, assistant_id, access, lock=True)
            if current is None:
                return None
            await cur.execute("SELECT max(version) FROM gw_assistant_versions WHERE assistant_id = %s", (assistant_id,))
            row = await cur.fetchone()
            highest = int(row[0] or 0) if row is not None else 0
            updated = change.apply(current, max(highest, current.version) + 1, now_iso())
            await self._insert_version(cur, updated)
            await self._make_latest(cur, updated)
            return updated

    async def set_assistant_version(
        self, assistant_id: str, version: int, *, access: AccessFilter | None = None
    ) -> AssistantRecord | None:
        async with self._transaction() as cur:
            current = await self._visible_assistant(cur, assistant_id, access, lock=True)
            if current is None:
                return None
            await cur.execute(
                f"SELECT {_VERSION_COLUMNS} FROM gw_assistant_versions WHERE assistant_id = %s AND version = %s",
                (assistant_id, version),
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(
                    f"Version {version} not found for assistant {assistant_id}",
                    resource="assistant",
                    id=assistant_id,
                    metadata={"version": str(version)},
                )
            chosen = assistant_row(row)
            chosen.created_at, chosen.updated_at = current.created_at, now_iso()
            await self._make_latest(cur, chosen)
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
        where, args = ["assistant_id = %s"], [assistant_id]
        if metadata:
            where.append("metadata @> %s::jsonb")
            args.append(_json(metadata))
        _access_clause("metadata", access, where, args)
        rows = await self._all(
            f"SELECT {_VERSION_COLUMNS} FROM gw_assistant_versions WHERE {' AND '.join(where)} "
            "ORDER BY version DESC LIMIT %s OFFSET %s",
            (*args, limit, offset),
        )
        return [assistant_row(row) for row in rows]

    async def delete_assistant(self, assistant_id: str, *, access: AccessFilter | None = None) -> bool:
        where, args = ["assistant_id = %s"], [assistant_id]
        _access_clause("metadata", access, where, args)
        async with self._transaction() as cur:
            await cur.execute(f"DELETE FROM gw_assistants WHERE {' AND '.join(where)}", args)
            if cur.rowcount != 1:
                return False
            await cur.execute("DELETE FROM gw_assistant_versions WHERE assistant_id = %s", (assistant_id,))
            await cur.execute("DELETE FROM gw_crons WHERE assistant_id = %s", (assistant_id,))
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
        rows = await self._all(
            f"SELECT {_ASSISTANT_COLUMNS} FROM gw_assistants{clause} ORDER BY {_assistant_order(sort_by, descending)} "
            "LIMIT %s OFFSET %s",
            (*args, limit, offset),
        )
        return [assistant_row(row) for row in rows]

    async def count_assistants(self, where: AssistantFilter) -> int:
        clause, args = _assistant_where(where)
        return int((await self._one(f"SELECT count(*) FROM gw_assistants{clause}", args))[0])

    # Threads

    @staticmethod
    async def _insert_thread(cur: AsyncCursor[Any], thread: ThreadRecord) -> bool:
        await cur.execute(
            f"INSERT INTO gw_threads ({_names(_THREAD_COLUMNS)}) VALUES "
            "(%s, %s, %s, %s, %s::jsonb, %s, %s::jsonb, %s::json, %s::json, %s::json) ON CONFLICT DO NOTHING "
            "RETURNING 1",
            (
                thread.thread_id,
                thread.created_at,
                thread.updated_at,
                thread.state_updated_at,
                _json(thread.metadata),
                thread.status,
                _json(thread.config),
                thread.values.decode(),
                thread.interrupts.decode(),
                thread.error.decode(),
            ),
        )
        # Fetched, not counted: in a pipeline, a fetch is what waits for the answer.
        return await cur.fetchone() is not None

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

    async def get_thread(self, thread_id: str, *, access: AccessFilter | None = None) -> ThreadRecord | None:
        where, args = ["thread_id = %s"], [thread_id]
        _access_clause("metadata", access, where, args)
        row = await self._one(f"SELECT {_THREAD_COLUMNS} FROM gw_threads WHERE {' AND '.join(where)}", args)
        return None if row is None else thread_row(row)

    @staticmethod
    async def _visible(cur: AsyncCursor[Any], thread_id: str, access: AccessFilter) -> bool:
        where, args = ["thread_id = %s"], [thread_id]
        _access_clause("metadata", access, where, args)
        await cur.execute(f"SELECT 1 FROM gw_threads WHERE {' AND '.join(where)}", args)
        return await cur.fetchone() is not None

    @staticmethod
    async def _change_thread(cur: AsyncCursor[Any], thread_id: str, change: ThreadChange) -> bool:
        sets, values = _thread_sets(change)
        await cur.execute(f"UPDATE gw_threads SET {sets} WHERE thread_id = %s", (*values, thread_id))
        return cur.rowcount == 1

    async def update_thread(self, thread_id: str, change: ThreadChange, *, access: AccessFilter | None = None) -> bool:
        async with self._transaction() as cur:
            if access is not None and not await self._visible(cur, thread_id, access):
                return False
            return await self._change_thread(cur, thread_id, change)

    async def delete_thread(self, thread_id: str, *, access: AccessFilter | None = None) -> list[str] | None:
        where, args = ["thread_id = %s"], [thread_id]
        _access_clause("metadata", access, where, args)
        async with self._transaction() as cur:
            await cur.execute(f"DELETE FROM gw_threads WHERE {' AND '.join(where)}", args)
            if cur.rowcount != 1:
                return None
            await cur.execute(_UNFINISHED_RUNS, (thread_id,))
            unfinished = [row[0] for row in await cur.fetchall()]
            await cur.execute(
                "DELETE FROM gw_run_events WHERE run_id IN (SELECT run_id FROM gw_runs WHERE thread_id = %s)",
                (thread_id,),
            )
            await cur.execute("DELETE FROM gw_runs WHERE thread_id = %s", (thread_id,))
            await cur.execute("DELETE FROM gw_crons WHERE thread_id = %s", (thread_id,))
        return unfinished

    async def copy_thread(
        self, thread_id: str, copy: ThreadRecord, *, access: AccessFilter | None = None
    ) -> ThreadRecord | None:
        where, args = ["thread_id = %s"], [thread_id]
        _access_clause("metadata", access, where, args)
        async with self._transaction() as cur:
            await cur.execute(f"SELECT {_THREAD_COLUMNS} FROM gw_threads WHERE {' AND '.join(where)}", args)
            row = await cur.fetchone()
            if row is None:
                return None
            source = thread_row(row)
            copy.metadata, copy.config = source.metadata, source.config
            copy.values, copy.interrupts, copy.error = source.values, source.interrupts, source.error
            copy.status = "idle" if source.status == "busy" else source.status
            if not await self._insert_thread(cur, copy):
                raise Conflict(f"Thread {copy.thread_id} already exists.")
            for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
                await cur.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND table_name = %s AND column_name <> 'thread_id' ORDER BY ordinal_position",
                    (table,),
                )
                columns = [r[0] for r in await cur.fetchall()]
                chosen = [
                    # The copy's checkpoints name the copy as their thread.
                    "CASE WHEN metadata ? 'thread_id' THEN jsonb_set(metadata, '{thread_id}', to_jsonb(%s::text)) "
                    "ELSE metadata END"
                    if table == "checkpoints" and column == "metadata"
                    else column
                    for column in columns
                ]
                values = (
                    (copy.thread_id, copy.thread_id, thread_id)
                    if table == "checkpoints"
                    else (copy.thread_id, thread_id)
                )
                await cur.execute(
                    f"INSERT INTO {table} (thread_id, {', '.join(columns)}) SELECT %s, {', '.join(chosen)} "
                    f"FROM {table} WHERE thread_id = %s",
                    values,
                )
        return copy

    async def search_threads(
        self, where: ThreadFilter, *, limit: int, offset: int, sort_by: str, descending: bool
    ) -> list[ThreadRecord]:
        clause, args = _thread_where(where)
        order = f"{_SORT_COLUMNS[sort_by]} {'DESC' if descending else 'ASC'}, thread_id"
        rows = await self._all(
            f"SELECT {_THREAD_COLUMNS} FROM gw_threads{clause} ORDER BY {order} LIMIT %s OFFSET %s",
            (*args, limit, offset),
        )
        return [thread_row(row) for row in rows]

    async def count_threads(self, where: ThreadFilter) -> int:
        clause, args = _thread_where(where)
        return int((await self._one(f"SELECT count(*) FROM gw_threads{clause}", args))[0])

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
        if new_thread and request_key is None:
            return await self._admit_on_new_thread(
                run,
                request,
                {**(new_thread_metadata or {}), **thread_metadata},
                claim_as,
                lease_seconds,
                assistant_config,
                assistant,
            )
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
            await cur.execute("SELECT metadata, config FROM gw_threads WHERE thread_id = %s FOR UPDATE", (thread_id,))
            await runs.execute(_UNFINISHED_RUNS, (thread_id,))
            if assistant is not None and await same.fetchone() is None:
                raise AssistantChanged(assistant.assistant_id)
            row = await cur.fetchone()
            unfinished: list[str] = [r[0] for r in await runs.fetchall()]
            if row is not None and access is not None and not await self._visible(cur, thread_id, access):
                # Another caller's thread: as if there were none, whether or not one may be created.
                raise NotFound(f"Thread {thread_id} not found.", resource="thread", id=thread_id)
            change = ThreadChange(status="busy")
            created = False
            if row is None:
                if if_not_exists != "create":
                    raise NotFound(f"Thread {thread_id} not found.", resource="thread", id=thread_id)
                now = now_iso()
                thread = ThreadRecord(thread_id, now, now, now, {**(new_thread_metadata or {}), **thread_metadata})
                created = await self._insert_thread(cur, thread)
                if created:
                    # Ours, locked by the insert, and without runs: nothing more to read.
                    row = (thread.metadata, thread.config)
                else:
                    # Another process created it first: lock it now, and read the runs it has.
                    await cur.execute(
                        "SELECT metadata, config FROM gw_threads WHERE thread_id = %s FOR UPDATE", (thread_id,)
                    )
                    await runs.execute(_UNFINISHED_RUNS, (thread_id,))
                    row = await cur.fetchone()
                    unfinished = [r[0] for r in await runs.fetchall()]
            metadata = row[0] if row is not None else {}
            if any(metadata.get(k) != v for k, v in thread_metadata.items()):
                # The thread's state is read with the graph that last ran on it.
                change.metadata = {**metadata, **thread_metadata}
            check_admission(run, unfinished, max_unfinished)
            if assistant_config is not None and not unfinished:
                existing = row[1] if row is not None else {}
                run_config = {k: v for k, v in (run.kwargs.get("config") or {}).items() if k != "configurable"}
                change.config = thread_config(assistant_config, existing, run_config)
            claimed = claim_as is not None and not unfinished
            if claimed:
                run.status, run.attempt = "running", 1
            await cur.execute(_INSERT_RUN, _run_values(run, request, claim_as if claimed else None, lease_seconds))
            await self._change_thread(cur, thread_id, change)
        cancel = unfinished if run.multitask_strategy in ("interrupt", "rollback") else []
        return Admission(cancel, claimed)

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
            await self._execute(_ADMIT_ON_NEW_THREAD, (*thread, *values))
        elif not await self._execute(_ADMIT_ON_NEW_THREAD_IF_SAME, (*same_assistant(assistant), *thread, *values)):
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
                    f"SELECT 1 FROM gw_runs WHERE thread_id = %s AND {_UNFINISHED} LIMIT 1", (run.thread_id,)
                )
                if await cur.fetchone() is not None:
                    change.status = "busy"
                await self._change_thread(cur, run.thread_id, change)
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
        sets, values = _thread_sets(change, keep_status=True)
        async with self._transaction(pipeline=True, runs=True) as cur:
            # The thread first, as admission locks it: the same order, no deadlock. The next
            # statement's snapshot is taken once the lock is held, so it sees every run admitted
            # before: the thread stays busy while one waits.
            await cur.execute("SELECT 1 FROM gw_threads WHERE thread_id = %s FOR UPDATE", (thread_id,))
            await cur.execute(
                f"WITH ended AS ({ended}) UPDATE gw_threads SET {sets}, status = CASE WHEN EXISTS "
                f"(SELECT 1 FROM gw_runs WHERE thread_id = %s AND run_id <> %s AND {_UNFINISHED}) THEN 'busy' "
                "ELSE coalesce(%s::text, status) END WHERE thread_id = %s AND EXISTS (SELECT 1 FROM ended) RETURNING 1",
                (*args, *values, thread_id, run_id, change.status, thread_id),
            )
            return await cur.fetchone() is not None

    async def get_run(self, run_id: str, *, access: AccessFilter | None = None) -> RunRecord | None:
        visible, args = _run_access(access)
        row = await self._one(f"SELECT {_RUN_COLUMNS} FROM gw_runs WHERE run_id = %s{visible}", (run_id, *args))
        return None if row is None else run_row(row)

    async def get_run_request(self, run_id: str) -> bytes | None:
        row = await self._one("SELECT request FROM gw_runs WHERE run_id = %s", (run_id,))
        return None if row is None or row[0] is None else bytes(row[0])

    async def delete_run(self, thread_id: str, run_id: str, *, access: AccessFilter | None = None) -> RunRecord | None:
        visible, args = _run_access(access)
        async with self._transaction() as cur:
            await cur.execute(
                f"SELECT {_RUN_COLUMNS} FROM gw_runs WHERE run_id = %s AND thread_id = %s{visible} FOR UPDATE",
                (run_id, thread_id, *args),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            run = run_row(row)
            if run.status in UNFINISHED:
                raise Conflict(f"Run {run_id} is {run.status}: cancel it before deleting it.")
            await cur.execute("DELETE FROM gw_run_events WHERE run_id = %s", (run_id,))
            await cur.execute("DELETE FROM gw_runs WHERE run_id = %s", (run_id,))
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
        visible, access_args = _run_access(access)
        sql = f"SELECT {_RUN_COLUMNS} FROM gw_runs WHERE thread_id = %s{visible}"
        args: list[Any] = [thread_id, *access_args]
        if status:
            sql += " AND status = %s"
            args.append(status)
        rows = await self._all(
            sql + " ORDER BY created_at DESC, run_id DESC LIMIT %s OFFSET %s", (*args, limit, offset)
        )
        return [run_row(row) for row in rows]

    async def runs_with_status(
        self, statuses: Sequence[RunStatus], *, access: AccessFilter | None = None
    ) -> list[RunRecord]:
        visible, args = _run_access(access)
        rows = await self._all(
            f"SELECT {_RUN_COLUMNS} FROM gw_runs WHERE status = ANY(%s){visible} ORDER BY created_at, run_id",
            (list(statuses), *args),
        )
        return [run_row(row) for row in rows]

    async def count_runs(self, statuses: Sequence[RunStatus]) -> int:
        row = await self._one("SELECT count(*) FROM gw_runs WHERE status = ANY(%s)", (list(statuses),))
        return int(row[0])

    async def ping(self) -> None:
        await self._one("SELECT 1")

    async def unfinished_runs(self, thread_id: str) -> list[RunRecord]:
        rows = await self._all(
            f"SELECT {_RUN_COLUMNS} FROM gw_runs WHERE thread_id = %s AND {_UNFINISHED} ORDER BY created_at, run_id",
            (thread_id,),
        )
        return [run_row(row) for row in rows]

    # Crons

    async def create_cron(self, cron: CronRecord) -> None:
        async with self._cursor() as cur:
            await cur.execute(
                f"INSERT INTO gw_crons ({_names(_CRON_COLUMNS)}) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s)",
                (
                    cron.cron_id,
                    cron.assistant_id,
                    cron.thread_id,
                    cron.user_id,
                    cron.schedule,
                    cron.timezone,
                    cron.end_time,
                    cron.next_run_date,
                    _json(cron.payload),
                    _json(cron.metadata),
                    cron.on_run_completed,
                    cron.enabled,
                    cron.created_at,
                    cron.updated_at,
                ),
            )

    async def get_cron(self, cron_id: str, *, access: AccessFilter | None = None) -> CronRecord | None:
        where, args = ["cron_id = %s"], [cron_id]
        _access_clause("metadata", access, where, args)
        row = await self._one(f"SELECT {_CRON_COLUMNS} FROM gw_crons WHERE {' AND '.join(where)}", args)
        return None if row is None else cron_row(row)

    async def update_cron(
        self, cron_id: str, change: CronChange, *, access: AccessFilter | None = None
    ) -> CronRecord | None:
        names: list[str] = ["updated_at = %s"]
        values: list[Any] = [now_iso()]
        for name in ("schedule", "timezone", "on_run_completed", "next_run_date", "end_time", "enabled"):
            if getattr(change, name) is not None:
                names.append(f"{name} = %s")
                values.append(getattr(change, name))
        if change.clear_end_time:
            names.append("end_time = NULL")
        for name in ("payload", "metadata"):
            if getattr(change, name) is not None:
                names.append(f"{name} = %s::jsonb")
                values.append(_json(getattr(change, name)))
        where, args = ["cron_id = %s"], [cron_id]
        _access_clause("metadata", access, where, args)
        row = await self._one(
            f"UPDATE gw_crons SET {', '.join(names)} WHERE {' AND '.join(where)} RETURNING {_CRON_COLUMNS}",
            (*values, *args),
        )
        return None if row is None else cron_row(row)

    async def delete_cron(self, cron_id: str, *, access: AccessFilter | None = None) -> bool:
        where, args = ["cron_id = %s"], [cron_id]
        _access_clause("metadata", access, where, args)
        async with self._cursor() as cur:
            await cur.execute(f"DELETE FROM gw_crons WHERE {' AND '.join(where)}", args)
            return cur.rowcount == 1

    async def search_crons(
        self, where: CronFilter, *, limit: int, offset: int, sort_by: str, descending: bool
    ) -> list[CronRecord]:
        clause, args = _cron_where(where)
        direction = "DESC" if descending else "ASC"
        collate = ' COLLATE "C"' if sort_by not in ("next_run_date", "end_time") else ""
        rows = await self._all(
            f"SELECT {_CRON_COLUMNS} FROM gw_crons{clause} ORDER BY {sort_by}{collate} {direction} NULLS LAST, "
            f'cron_id COLLATE "C" {direction} LIMIT %s OFFSET %s',
            (*args, limit, offset),
        )
        return [cron_row(row) for row in rows]

    async def count_crons(self, where: CronFilter) -> int:
        clause, args = _cron_where(where)
        return int((await self._one(f"SELECT count(*) FROM gw_crons{clause}", args))[0])

    async def due_crons(self, now: datetime, limit: int) -> list[CronRecord]:
        rows = await self._all(
            f"SELECT {_CRON_COLUMNS} FROM gw_crons WHERE enabled AND next_run_date <= %s "
            "AND (end_time IS NULL OR end_time >= %s) ORDER BY next_run_date LIMIT %s",
            (now, now, limit),
            runs=True,
        )
        return [cron_row(row) for row in rows]

    async def claim_cron(self, cron_id: str, tick: datetime, next_run_date: datetime) -> bool:
        async with self._cursor(runs=True) as cur:
            await cur.execute(
                "UPDATE gw_crons SET next_run_date = %s WHERE cron_id = %s AND next_run_date = %s",
                (next_run_date, cron_id, tick),
            )
            return cur.rowcount == 1

    # Event log of resumable runs

    async def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        async with self._cursor(runs=True) as cur:
            await cur.executemany(
                "INSERT INTO gw_run_events (run_id, seq, name, ns, data) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                [(run_id, e.seq, e.name, "|".join(e.ns), e.data) for e in events],
            )

    async def read_events(self, run_id: str, after: int, limit: int) -> list[Event]:
        rows = await self._all(
            "SELECT seq, name, ns, data FROM gw_run_events WHERE run_id = %s AND seq > %s ORDER BY seq LIMIT %s",
            (run_id, after, limit),
        )
        return [Event(seq, name, tuple(ns.split("|")) if ns else (), bytes(data)) for seq, name, ns, data in rows]

    async def last_seq(self, run_id: str) -> int:
        row = await self._one("SELECT max(seq) FROM gw_run_events WHERE run_id = %s", (run_id,))
        return int(row[0] or 0)

    async def delete_events(self, run_id: str) -> None:
        async with self._cursor() as cur:
            await cur.execute("DELETE FROM gw_run_events WHERE run_id = %s", (run_id,))

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
on_io_loop(*public_coroutines(PostgresStorage, but=("setup", "close")))(PostgresStorage)
