"""The record store's methods both SQL backends make alike (assistants and their versions,
threads, runs and crons as records, the event log's reads), over the statements of
gateway.storage.sql.statements. What each backend decides for a thread in its own way
(admission, the queue's claims and leases, request keys, ends of runs), its schema and its
connections stay in its module, which provides:

- `_session()`: statements on a connection, each on its own (`runs`: for the runs' own work);
- `_atomic()`: a transaction;
- `_search()`: the rows of a search or count on a caller's filter (sqlite stops one that runs
  too long)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from gateway.shared.errors import Conflict, NotFound
from gateway.shared.records import (
    UNFINISHED,
    AccessFilter,
    AssistantChange,
    AssistantFilter,
    AssistantRecord,
    CronChange,
    CronFilter,
    CronRecord,
    Event,
    RunRecord,
    RunStatus,
    ThreadChange,
    ThreadFilter,
    ThreadRecord,
    now_iso,
)
from gateway.storage.sql.rows import assistant_row, cron_row, run_row, thread_row
from gateway.storage.sql.statements import SORT_COLUMNS, UNFINISHED_SQL, Sql


class Tx(Protocol):
    """Statements on one connection, in a transaction or each on its own."""

    async def one(self, sql: str, args: Sequence[Any] = ()) -> Any: ...

    async def all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]: ...

    async def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        """How many rows the statement changed."""
        ...


def _direction(descending: bool) -> str:
    return "DESC" if descending else "ASC"


class SqlRecords:
    sql: Sql

    def _session(self, *, runs: bool = False) -> AbstractAsyncContextManager[Tx]:
        raise NotImplementedError

    def _atomic(self) -> AbstractAsyncContextManager[Tx]:
        raise NotImplementedError

    async def _search(self, sql: str, args: Sequence[Any]) -> list[Any]:
        raise NotImplementedError

    def _q(self, sql: str) -> str:
        return self.sql.d.sql(sql)

    async def _one(self, sql: str, args: Sequence[Any] = (), *, runs: bool = False) -> Any:
        async with self._session(runs=runs) as tx:
            return await tx.one(sql, args)

    async def _all(self, sql: str, args: Sequence[Any] = (), *, runs: bool = False) -> list[Any]:
        async with self._session(runs=runs) as tx:
            return await tx.all(sql, args)

    async def _run(self, sql: str, args: Sequence[Any] = (), *, runs: bool = False) -> int:
        async with self._session(runs=runs) as tx:
            return await tx.run(sql, args)

    # Assistants

    async def _visible_assistant(
        self, tx: Tx, assistant_id: str, access: AccessFilter | None, *, lock: bool = False
    ) -> AssistantRecord | None:
        where, args = self.sql.by_id("assistant_id", assistant_id, access)
        suffix = self.sql.d.for_update if lock else ""
        row = await tx.one(self._q(f"SELECT {self.sql.assistants} FROM gw_assistants WHERE {where}{suffix}"), args)
        return None if row is None else assistant_row(row)

    async def _insert_assistant(self, tx: Tx, assistant: AssistantRecord) -> bool:
        if await tx.run(*self.sql.insert_assistant(assistant)) != 1:
            return False
        await tx.run(*self.sql.insert_version(assistant))
        return True

    async def put_assistant(self, assistant: AssistantRecord) -> AssistantRecord:
        async with self._atomic() as tx:
            await self._insert_assistant(tx, assistant)
            stored = await self._visible_assistant(tx, assistant.assistant_id, None)
            assert stored is not None
            # A gateway that stored its system assistants before versions were kept.
            await tx.run(*self.sql.insert_version(stored))
        return stored

    async def create_assistant(self, assistant: AssistantRecord) -> bool:
        async with self._atomic() as tx:
            return await self._insert_assistant(tx, assistant)

    async def get_assistant(self, assistant_id: str, *, access: AccessFilter | None = None) -> AssistantRecord | None:
        async with self._session() as tx:
            return await self._visible_assistant(tx, assistant_id, access)

    async def update_assistant(
        self, assistant_id: str, change: AssistantChange, *, access: AccessFilter | None = None
    ) -> AssistantRecord | None:
        async with self._atomic() as tx:
            current = await self._visible_assistant(tx, assistant_id, access, lock=True)
            if current is None:
                return None
            row = await tx.one(
                self._q("SELECT max(version) FROM gw_assistant_versions WHERE assistant_id = ?"), (assistant_id,)
            )
            highest = int(row[0] or 0) if row is not None else 0
            updated = change.apply(current, max(highest, current.version) + 1, now_iso())
            await tx.run(*self.sql.insert_version(updated))
            await tx.run(*self.sql.make_latest(updated))
        return updated

    async def set_assistant_version(
        self, assistant_id: str, version: int, *, access: AccessFilter | None = None
    ) -> AssistantRecord | None:
        async with self._atomic() as tx:
            current = await self._visible_assistant(tx, assistant_id, access, lock=True)
            if current is None:
                return None
            row = await tx.one(
                self._q(
                    f"SELECT {self.sql.versions} FROM gw_assistant_versions WHERE assistant_id = ? AND version = ?"
                ),
                (assistant_id, version),
            )
            if row is None:
                raise NotFound(
                    f"Version {version} not found for assistant {assistant_id}",
                    resource="assistant",
                    id=assistant_id,
                    metadata={"version": str(version)},
                )
            chosen = assistant_row(row)
            chosen.created_at, chosen.updated_at = current.created_at, now_iso()
            await tx.run(*self.sql.make_latest(chosen))
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
        where, args = self.sql.by_id("assistant_id", assistant_id, access)
        if metadata:
            contains, values = self.sql.d.contains("metadata", metadata)
            where, args = f"{where} AND {contains}", [*args, *values]
        rows = await self._search(
            self._q(
                f"SELECT {self.sql.versions} FROM gw_assistant_versions WHERE {where} "
                "ORDER BY version DESC LIMIT ? OFFSET ?"
            ),
            (*args, limit, offset),
        )
        return [assistant_row(row) for row in rows]

    async def delete_assistant(self, assistant_id: str, *, access: AccessFilter | None = None) -> bool:
        where, args = self.sql.by_id("assistant_id", assistant_id, access)
        async with self._atomic() as tx:
            if await tx.run(self._q(f"DELETE FROM gw_assistants WHERE {where}"), args) != 1:
                return False
            await tx.run(self._q("DELETE FROM gw_assistant_versions WHERE assistant_id = ?"), (assistant_id,))
            await tx.run(self._q("DELETE FROM gw_crons WHERE assistant_id = ?"), (assistant_id,))
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
        clause, args = self.sql.assistant_where(where)
        column = f"lower({sort_by})" if sort_by in ("name", "graph_id") else sort_by
        collate, direction = self.sql.d.collate, _direction(descending)
        rows = await self._search(
            self._q(
                f"SELECT {self.sql.assistants} FROM gw_assistants{clause} ORDER BY {column}{collate} {direction}, "
                f"assistant_id{collate} {direction} LIMIT ? OFFSET ?"
            ),
            (*args, limit, offset),
        )
        return [assistant_row(row) for row in rows]

    async def _count(self, table: str, clause: str, args: Sequence[Any]) -> int:
        """The rows of `table` that a search's WHERE clause takes (bounded as a search is)."""
        return int((await self._search(self._q(f"SELECT count(*) FROM {table}{clause}"), args))[0][0])

    async def count_assistants(self, where: AssistantFilter) -> int:
        clause, args = self.sql.assistant_where(where)
        return await self._count("gw_assistants", clause, args)

    # Threads

    async def get_thread(self, thread_id: str, *, access: AccessFilter | None = None) -> ThreadRecord | None:
        where, args = self.sql.by_id("thread_id", thread_id, access)
        row = await self._one(self._q(f"SELECT {self.sql.threads} FROM gw_threads WHERE {where}"), args)
        return None if row is None else thread_row(row)

    async def _visible(self, tx: Tx, thread_id: str, access: AccessFilter | None) -> bool:
        where, args = self.sql.by_id("thread_id", thread_id, access)
        return await tx.one(self._q(f"SELECT 1 FROM gw_threads WHERE {where}"), args) is not None

    async def update_thread(self, thread_id: str, change: ThreadChange, *, access: AccessFilter | None = None) -> bool:
        async with self._atomic() as tx:
            if access is not None and not await self._visible(tx, thread_id, access):
                return False
            return await tx.run(*self.sql.change_thread(thread_id, change)) == 1

    async def delete_thread(self, thread_id: str, *, access: AccessFilter | None = None) -> list[str] | None:
        where, args = self.sql.by_id("thread_id", thread_id, access)
        async with self._atomic() as tx:
            if await tx.run(self._q(f"DELETE FROM gw_threads WHERE {where}"), args) != 1:
                return None
            unfinished = [row[0] for row in await tx.all(self.sql.unfinished_runs, (thread_id,))]
            await tx.run(
                self._q("DELETE FROM gw_run_events WHERE run_id IN (SELECT run_id FROM gw_runs WHERE thread_id = ?)"),
                (thread_id,),
            )
            await tx.run(self._q("DELETE FROM gw_runs WHERE thread_id = ?"), (thread_id,))
            await tx.run(self._q("DELETE FROM gw_crons WHERE thread_id = ?"), (thread_id,))
        return unfinished

    async def _copy_checkpoints(self, tx: Tx, thread_id: str, copy_id: str) -> None:
        raise NotImplementedError

    async def copy_thread(
        self, thread_id: str, copy: ThreadRecord, *, access: AccessFilter | None = None
    ) -> ThreadRecord | None:
        where, args = self.sql.by_id("thread_id", thread_id, access)
        async with self._atomic() as tx:
            row = await tx.one(self._q(f"SELECT {self.sql.threads} FROM gw_threads WHERE {where}"), args)
            if row is None:
                return None
            source = thread_row(row)
            copy.metadata, copy.config = source.metadata, source.config
            copy.values, copy.interrupts, copy.error = source.values, source.interrupts, source.error
            copy.status = "idle" if source.status == "busy" else source.status
            if await tx.one(*self.sql.insert_thread(copy)) is None:
                raise Conflict(f"Thread {copy.thread_id} already exists.")
            await self._copy_checkpoints(tx, thread_id, copy.thread_id)
        return copy

    async def search_threads(
        self, where: ThreadFilter, *, limit: int, offset: int, sort_by: str, descending: bool
    ) -> list[ThreadRecord]:
        clause, args = self.sql.thread_where(where)
        order = f"{SORT_COLUMNS[sort_by]} {_direction(descending)}, thread_id"
        rows = await self._search(
            self._q(f"SELECT {self.sql.threads} FROM gw_threads{clause} ORDER BY {order} LIMIT ? OFFSET ?"),
            (*args, limit, offset),
        )
        return [thread_row(row) for row in rows]

    async def count_threads(self, where: ThreadFilter) -> int:
        clause, args = self.sql.thread_where(where)
        return await self._count("gw_threads", clause, args)

    # Runs

    async def get_run(self, run_id: str, *, access: AccessFilter | None = None) -> RunRecord | None:
        visible, args = self.sql.run_access(access)
        row = await self._one(
            self._q(f"SELECT {self.sql.runs} FROM gw_runs WHERE run_id = ?{visible}"), (run_id, *args)
        )
        return None if row is None else run_row(row)

    async def get_run_request(self, run_id: str) -> bytes | None:
        row = await self._one(self._q("SELECT request FROM gw_runs WHERE run_id = ?"), (run_id,))
        return None if row is None or row[0] is None else bytes(row[0])

    async def delete_run(self, thread_id: str, run_id: str, *, access: AccessFilter | None = None) -> RunRecord | None:
        visible, args = self.sql.run_access(access)
        async with self._atomic() as tx:
            row = await tx.one(
                self._q(
                    f"SELECT {self.sql.runs} FROM gw_runs WHERE run_id = ? AND thread_id = ?{visible}"
                    f"{self.sql.d.for_update}"
                ),
                (run_id, thread_id, *args),
            )
            if row is None:
                return None
            run = run_row(row)
            if run.status in UNFINISHED:
                raise Conflict(f"Run {run_id} is {run.status}: cancel it before deleting it.")
            await tx.run(self._q("DELETE FROM gw_run_events WHERE run_id = ?"), (run_id,))
            await tx.run(self._q("DELETE FROM gw_runs WHERE run_id = ?"), (run_id,))
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
        visible, access_args = self.sql.run_access(access)
        sql = f"SELECT {self.sql.runs} FROM gw_runs WHERE thread_id = ?{visible}"
        args: list[Any] = [thread_id, *access_args]
        if status:
            sql += " AND status = ?"
            args.append(status)
        sql += " ORDER BY created_at DESC, run_id DESC LIMIT ? OFFSET ?"
        return [run_row(row) for row in await self._all(self._q(sql), (*args, limit, offset))]

    async def runs_with_status(
        self, statuses: Sequence[RunStatus], *, access: AccessFilter | None = None
    ) -> list[RunRecord]:
        among, args = self.sql.d.in_list("status", statuses)
        visible, access_args = self.sql.run_access(access)
        rows = await self._all(
            self._q(f"SELECT {self.sql.runs} FROM gw_runs WHERE {among}{visible} ORDER BY created_at, run_id"),
            (*args, *access_args),
        )
        return [run_row(row) for row in rows]

    async def count_runs(self, statuses: Sequence[RunStatus]) -> int:
        among, args = self.sql.d.in_list("status", statuses)
        return int((await self._one(self._q(f"SELECT count(*) FROM gw_runs WHERE {among}"), args))[0])

    async def ping(self) -> None:
        await self._one("SELECT 1 FROM gw_runs LIMIT 1")

    async def unfinished_runs(self, thread_id: str) -> list[RunRecord]:
        rows = await self._all(
            self._q(
                f"SELECT {self.sql.runs} FROM gw_runs WHERE thread_id = ? AND {UNFINISHED_SQL} ORDER BY created_at, run_id"
            ),
            (thread_id,),
        )
        return [run_row(row) for row in rows]

    # Crons

    async def create_cron(self, cron: CronRecord) -> None:
        await self._run(*self.sql.insert_cron(cron))

    async def get_cron(self, cron_id: str, *, access: AccessFilter | None = None) -> CronRecord | None:
        where, args = self.sql.by_id("cron_id", cron_id, access)
        row = await self._one(self._q(f"SELECT {self.sql.crons} FROM gw_crons WHERE {where}"), args)
        return None if row is None else cron_row(row)

    async def update_cron(
        self, cron_id: str, change: CronChange, *, access: AccessFilter | None = None
    ) -> CronRecord | None:
        sets, values = self.sql.cron_sets(change)
        where, args = self.sql.by_id("cron_id", cron_id, access)
        row = await self._one(
            self._q(f"UPDATE gw_crons SET {sets} WHERE {where} RETURNING {self.sql.crons}"), (*values, *args)
        )
        return None if row is None else cron_row(row)

    async def delete_cron(self, cron_id: str, *, access: AccessFilter | None = None) -> bool:
        where, args = self.sql.by_id("cron_id", cron_id, access)
        return await self._run(self._q(f"DELETE FROM gw_crons WHERE {where}"), args) == 1

    async def search_crons(
        self, where: CronFilter, *, limit: int, offset: int, sort_by: str, descending: bool
    ) -> list[CronRecord]:
        clause, args = self.sql.cron_where(where)
        d, direction = self.sql.d, _direction(descending)
        collate = d.collate if sort_by not in ("next_run_date", "end_time") else ""
        rows = await self._search(
            self._q(
                f"SELECT {self.sql.crons} FROM gw_crons{clause} ORDER BY {sort_by}{collate} {direction}{d.nulls_last}, "
                f"cron_id{d.collate} {direction} LIMIT ? OFFSET ?"
            ),
            (*args, limit, offset),
        )
        return [cron_row(row) for row in rows]

    async def count_crons(self, where: CronFilter) -> int:
        clause, args = self.sql.cron_where(where)
        return await self._count("gw_crons", clause, args)

    async def due_crons(self, now: datetime, limit: int) -> list[CronRecord]:
        moment = self.sql.d.moment(now)
        rows = await self._all(
            self._q(
                f"SELECT {self.sql.crons} FROM gw_crons WHERE enabled AND next_run_date <= ? "
                "AND (end_time IS NULL OR end_time >= ?) ORDER BY next_run_date LIMIT ?"
            ),
            (moment, moment, limit),
            runs=True,
        )
        return [cron_row(row) for row in rows]

    async def claim_cron(self, cron_id: str, tick: datetime, next_run_date: datetime) -> bool:
        d = self.sql.d
        changed = await self._run(
            self._q("UPDATE gw_crons SET next_run_date = ? WHERE cron_id = ? AND next_run_date = ?"),
            (d.moment(next_run_date), cron_id, d.moment(tick)),
            runs=True,
        )
        return changed == 1

    # Event log of resumable runs

    async def read_events(self, run_id: str, after: int, limit: int) -> list[Event]:
        rows = await self._all(
            self._q("SELECT seq, name, ns, data FROM gw_run_events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?"),
            (run_id, after, limit),
        )
        return [Event(seq, name, tuple(ns.split("|")) if ns else (), bytes(data)) for seq, name, ns, data in rows]

    async def last_seq(self, run_id: str) -> int:
        row = await self._one(self._q("SELECT max(seq) FROM gw_run_events WHERE run_id = ?"), (run_id,))
        return int(row[0] or 0)

    async def delete_events(self, run_id: str) -> None:
        await self._run(self._q("DELETE FROM gw_run_events WHERE run_id = ?"), (run_id,))
