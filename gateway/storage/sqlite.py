"""The default backend: threads, runs and assistants in one sqlite file (WAL mode), beside
the LangGraph checkpoints that the checkpointer keeps in the same file."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite
import orjson

from gateway.core.channel import Event
from gateway.storage.base import AssistantRecord, RunRecord, ThreadRecord, now_iso

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
"""

_THREAD_COLUMNS = (
    'thread_id, created_at, updated_at, state_updated_at, metadata, status, config, "values", interrupts, error'
)
_RUN_COLUMNS = "run_id, thread_id, assistant_id, created_at, updated_at, status, metadata, multitask_strategy, kwargs"
_JSON_THREAD_FIELDS = {"metadata", "config"}
_RAW_THREAD_FIELDS = {"values", "interrupts", "error"}


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _matches(metadata: dict[str, Any], wanted: dict[str, Any] | None) -> bool:
    return not wanted or all(metadata.get(k) == v for k, v in wanted.items())


def _thread(row: Sequence[Any]) -> ThreadRecord:
    return ThreadRecord(
        thread_id=row[0],
        created_at=row[1],
        updated_at=row[2],
        state_updated_at=row[3],
        metadata=orjson.loads(row[4]),
        status=row[5],
        config=orjson.loads(row[6]),
        values=bytes(row[7]),
        interrupts=bytes(row[8]),
        error=bytes(row[9]),
    )


def _run(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        thread_id=row[1],
        assistant_id=row[2],
        created_at=row[3],
        updated_at=row[4],
        status=row[5],
        metadata=orjson.loads(row[6]),
        multitask_strategy=row[7],
        kwargs=orjson.loads(row[8]),
    )


class SqliteStorage:
    """One autocommit connection for everything in the file: the gateway's tables and, through
    `conn` and `lock`, the LangGraph checkpointer's. A single connection means no two writers
    contend for sqlite's file lock (which in WAL mode can fail at once instead of waiting)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self.lock = asyncio.Lock()

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("storage is not set up")
        return self._conn

    async def setup(self) -> None:
        self._conn = await aiosqlite.connect(self.path, isolation_level=None)
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self._conn.execute("PRAGMA synchronous=NORMAL")
        await self._conn.execute("PRAGMA busy_timeout=5000")
        await self._conn.executescript(_SCHEMA)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    # Assistants

    async def put_assistant(self, assistant: AssistantRecord) -> AssistantRecord:
        await self.conn.execute(
            "INSERT OR IGNORE INTO gw_assistants VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        stored = await self.get_assistant(assistant.assistant_id)
        assert stored is not None
        return stored

    async def get_assistant(self, assistant_id: str) -> AssistantRecord | None:
        async with self.conn.execute("SELECT * FROM gw_assistants WHERE assistant_id = ?", (assistant_id,)) as cur:
            row = await cur.fetchone()
        return None if row is None else self._assistant(row)

    @staticmethod
    def _assistant(row: Sequence[Any]) -> AssistantRecord:
        return AssistantRecord(
            assistant_id=row[0],
            graph_id=row[1],
            name=row[2],
            created_at=row[3],
            updated_at=row[4],
            config=orjson.loads(row[5]),
            context=orjson.loads(row[6]),
            metadata=orjson.loads(row[7]),
            version=row[8],
            description=row[9],
        )

    async def search_assistants(
        self, *, graph_id: str | None, name: str | None, metadata: dict[str, Any] | None, limit: int, offset: int
    ) -> list[AssistantRecord]:
        async with self.conn.execute("SELECT * FROM gw_assistants ORDER BY created_at DESC, graph_id") as cur:
            rows = await cur.fetchall()
        found = [
            a
            for a in map(self._assistant, rows)
            if (graph_id is None or a.graph_id == graph_id)
            and (name is None or a.name == name)
            and _matches(a.metadata, metadata)
        ]
        return found[offset : offset + limit]

    # Threads

    async def create_thread(self, thread: ThreadRecord) -> bool:
        cur = await self.conn.execute(
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

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        async with self.conn.execute(
            f"SELECT {_THREAD_COLUMNS} FROM gw_threads WHERE thread_id = ?", (thread_id,)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else _thread(row)

    async def update_thread(self, thread_id: str, **fields: Any) -> None:
        fields.setdefault("updated_at", now_iso())
        names, values = [], []
        for key, value in fields.items():
            names.append(f'"{key}" = ?')
            if key in _JSON_THREAD_FIELDS:
                value = _dumps(value)
            values.append(value)
        await self.conn.execute(f"UPDATE gw_threads SET {', '.join(names)} WHERE thread_id = ?", (*values, thread_id))

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[None]:
        # A multi-statement write: the lock keeps the checkpointer's statements out of it.
        async with self.lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")

    async def delete_thread(self, thread_id: str) -> bool:
        async with self._write():
            cur = await self.conn.execute("DELETE FROM gw_threads WHERE thread_id = ?", (thread_id,))
            await self.conn.execute(
                "DELETE FROM gw_run_events WHERE run_id IN (SELECT run_id FROM gw_runs WHERE thread_id = ?)",
                (thread_id,),
            )
            await self.conn.execute("DELETE FROM gw_runs WHERE thread_id = ?", (thread_id,))
        return cur.rowcount == 1

    async def _threads(self, status: str | None) -> list[ThreadRecord]:
        sql = f"SELECT {_THREAD_COLUMNS} FROM gw_threads"
        args: tuple[Any, ...] = ()
        if status:
            sql += " WHERE status = ?"
            args = (status,)
        async with self.conn.execute(sql + " ORDER BY created_at DESC", args) as cur:
            return [_thread(row) for row in await cur.fetchall()]

    async def search_threads(
        self, *, metadata: dict[str, Any] | None, status: str | None, limit: int, offset: int
    ) -> list[ThreadRecord]:
        found = [t for t in await self._threads(status) if _matches(t.metadata, metadata)]
        return found[offset : offset + limit]

    async def count_threads(self, *, metadata: dict[str, Any] | None, status: str | None) -> int:
        return sum(1 for t in await self._threads(status) if _matches(t.metadata, metadata))

    # Runs

    async def create_run(self, run: RunRecord) -> None:
        await self.conn.execute(
            f"INSERT INTO gw_runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.run_id,
                run.thread_id,
                run.assistant_id,
                run.created_at,
                run.updated_at,
                run.status,
                _dumps(run.metadata),
                run.multitask_strategy,
                orjson.dumps(run.kwargs),
            ),
        )

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self.conn.execute(f"SELECT {_RUN_COLUMNS} FROM gw_runs WHERE run_id = ?", (run_id,)) as cur:
            row = await cur.fetchone()
        return None if row is None else _run(row)

    async def update_run_status(self, run_id: str, status: str) -> None:
        await self.conn.execute(
            "UPDATE gw_runs SET status = ?, updated_at = ? WHERE run_id = ?", (status, now_iso(), run_id)
        )

    async def delete_run(self, run_id: str) -> None:
        await self.conn.execute("DELETE FROM gw_runs WHERE run_id = ?", (run_id,))

    async def list_runs(self, thread_id: str, *, status: str | None, limit: int, offset: int) -> list[RunRecord]:
        sql = f"SELECT {_RUN_COLUMNS} FROM gw_runs WHERE thread_id = ?"
        args: list[Any] = [thread_id]
        if status:
            sql += " AND status = ?"
            args.append(status)
        sql += " ORDER BY created_at DESC LIMIT ? OFFSET ?"
        async with self.conn.execute(sql, (*args, limit, offset)) as cur:
            return [_run(row) for row in await cur.fetchall()]

    async def runs_with_status(self, statuses: Sequence[str]) -> list[RunRecord]:
        marks = ", ".join("?" for _ in statuses)
        async with self.conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM gw_runs WHERE status IN ({marks}) ORDER BY created_at", tuple(statuses)
        ) as cur:
            return [_run(row) for row in await cur.fetchall()]

    # Event log of resumable runs

    async def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        now = time.time()
        rows = [(run_id, e.seq, e.name, "|".join(e.ns), e.data, now) for e in events]
        async with self._write():
            await self.conn.executemany("INSERT OR IGNORE INTO gw_run_events VALUES (?, ?, ?, ?, ?, ?)", rows)

    async def read_events(self, run_id: str, after: int, limit: int) -> list[Event]:
        async with self.conn.execute(
            "SELECT seq, name, ns, data FROM gw_run_events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (run_id, after, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [Event(seq, name, tuple(ns.split("|")) if ns else (), bytes(data)) for seq, name, ns, data in rows]

    async def delete_events(self, run_id: str) -> None:
        await self.conn.execute("DELETE FROM gw_run_events WHERE run_id = ?", (run_id,))

    async def prune_events(self, older_than: float) -> int:
        cur = await self.conn.execute("DELETE FROM gw_run_events WHERE created_at < ?", (time.time() - older_than,))
        return cur.rowcount

    async def delete_run_checkpoints(self, thread_id: str, run_id: str) -> None:
        """Deletes the checkpoints (and their pending writes) that one run wrote: a rollback."""
        async with self._write():
            found = "thread_id = ? AND json_extract(CAST(metadata AS TEXT), '$.run_id') = ?"
            await self.conn.execute(
                f"DELETE FROM writes WHERE thread_id = ? AND checkpoint_id IN (SELECT checkpoint_id FROM checkpoints WHERE {found})",
                (thread_id, thread_id, run_id),
            )
            await self.conn.execute(f"DELETE FROM checkpoints WHERE {found}", (thread_id, run_id))
