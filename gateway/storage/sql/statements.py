"""The statements both SQL backends share, built once over a dialect
(gateway.storage.sql.dialect) as `(sql, args)` in its placeholders, as LangGraph's savers share
their SQL: the records' columns, the filters (searches and callers' access) and the writes of
assistants, threads and crons. gateway.storage.sql.records runs them."""

from __future__ import annotations

from typing import Any

from gateway.shared.records import (
    AccessFilter,
    AssistantFilter,
    AssistantRecord,
    CronChange,
    CronFilter,
    CronRecord,
    Equals,
    RunRecord,
    ThreadChange,
    ThreadFilter,
    ThreadRecord,
    now_iso,
)
from gateway.shared.serde import json_text
from gateway.storage.sql.dialect import Dialect

UNFINISHED_SQL = "status IN ('pending', 'running')"
SORT_COLUMNS = {k: k for k in ("thread_id", "status", "created_at", "updated_at", "state_updated_at")}
Clause = tuple[str, list[Any]]


def _where(clauses: list[str]) -> str:
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


class Sql:
    """The shared statements in dialect `d`; JSON columns are read as text (one decoding,
    and graph data as it was written)."""

    def __init__(self, d: Dialect) -> None:
        self.d = d
        t = d.as_text
        self.threads = (
            f"thread_id, created_at, updated_at, state_updated_at, metadata{t}, status, config{t}, "
            f'"values"{t}, interrupts{t}, error{t}'
        )
        self.runs = (
            "run_id, thread_id, assistant_id, created_at, updated_at, status, "
            f"metadata{t}, multitask_strategy, kwargs{t}, attempt"
        )
        self.assistants = (
            f"assistant_id, graph_id, name, created_at, updated_at, config{t}, context{t}, metadata{t}, version, "
            "description"
        )
        # A version read as an assistant record: its `updated_at` is when the version was made.
        self.versions = self.assistants.replace("updated_at", "created_at")
        self.crons = (
            "cron_id, assistant_id, thread_id, user_id, schedule, timezone, end_time, next_run_date, "
            f"payload{t}, metadata{t}, on_run_completed, enabled, created_at, updated_at"
        )
        # Nothing when the assistant a run was made with is no longer as it was read.
        self.same_assistant = d.sql(
            "SELECT 1 FROM gw_assistants WHERE assistant_id = ? AND version = ? AND updated_at = ?"
        )
        self.unfinished_runs = d.sql(
            f"SELECT run_id FROM gw_runs WHERE thread_id = ? AND {UNFINISHED_SQL} ORDER BY created_at, run_id"
        )

    def names(self, columns: str) -> str:
        return columns.replace(self.d.as_text, "") if self.d.as_text else columns

    # Filters

    def access(self, column: str, access: AccessFilter) -> Clause:
        """A condition on the JSON object in `column` that holds where `access.allows` it."""
        parts: list[str] = []
        args: list[Any] = []
        for condition in access.conditions:
            if isinstance(condition, Equals):
                sql, values = self.d.equals(column, condition.key, condition.value)
            else:
                sql, values = self.d.has_all(column, condition.key, condition.values)
            parts.append(sql)
            args += values
        if access.any_of:
            groups = [self.access(column, group) for group in access.any_of]
            parts.append("(" + " OR ".join(sql for sql, _ in groups) + ")")
            for _, group_args in groups:
                args += group_args
        for group in access.all_of:
            sql, group_args = self.access(column, group)
            parts.append(sql)
            args += group_args
        return ("(" + " AND ".join(parts) + ")") if parts else self.d.true, args

    def by_id(self, column: str, value: str, access: AccessFilter | None) -> Clause:
        """`column = value`, and `access` on the row's metadata."""
        where, args = [f"{column} = ?"], [value]
        self._access_clause("metadata", access, where, args)
        return " AND ".join(where), args

    def _access_clause(self, column: str, access: AccessFilter | None, where: list[str], args: list[Any]) -> None:
        if access is not None:
            sql, values = self.access(column, access)
            where.append(sql)
            args += values

    def _contains(self, column: str, wanted: dict[str, Any] | None, where: list[str], args: list[Any]) -> None:
        if wanted:
            sql, values = self.d.contains(column, wanted)
            where.append(sql)
            args += values

    def run_access(self, access: AccessFilter | None) -> Clause:
        """` AND ...` for a query on gw_runs: the run's thread passes `access`."""
        if access is None:
            return "", []
        sql, args = self.access("t.metadata", access)
        return f" AND EXISTS (SELECT 1 FROM gw_threads AS t WHERE t.thread_id = gw_runs.thread_id AND {sql})", args

    def thread_where(self, where: ThreadFilter) -> Clause:
        clauses: list[str] = []
        args: list[Any] = []
        if where.status:
            clauses.append("status = ?")
            args.append(where.status)
        if where.ids is not None:
            sql, values = self.d.in_list("thread_id", where.ids)
            clauses.append(sql)
            args += values
        self._contains("metadata", where.metadata, clauses, args)
        self._contains(f'"values"{self.d.as_object}', where.values, clauses, args)
        self._access_clause("metadata", where.access, clauses, args)
        return _where(clauses), args

    def assistant_where(self, where: AssistantFilter) -> Clause:
        clauses: list[str] = []
        args: list[Any] = []
        if where.graph_id is not None:
            clauses.append("graph_id = ?")
            args.append(where.graph_id)
        if where.name is not None:
            clauses.append(f"{self.d.find}(lower(name), lower(?)) > 0")
            args.append(where.name)
        self._contains("metadata", where.metadata, clauses, args)
        self._access_clause("metadata", where.access, clauses, args)
        return _where(clauses), args

    def cron_where(self, where: CronFilter) -> Clause:
        clauses: list[str] = []
        args: list[Any] = []
        for column in ("assistant_id", "thread_id"):
            if getattr(where, column) is not None:
                clauses.append(f"{column} = ?")
                args.append(getattr(where, column))
        if where.enabled is not None:
            clauses.append("enabled = ?")
            args.append(self.d.flag(where.enabled))
        self._contains("metadata", where.metadata, clauses, args)
        self._access_clause("metadata", where.access, clauses, args)
        if where.thread_access is not None:
            sql, values = self.access("t.metadata", where.thread_access)
            clauses.append(
                f"(gw_crons.thread_id IS NULL OR EXISTS (SELECT 1 FROM gw_threads AS t "
                f"WHERE t.thread_id = gw_crons.thread_id AND {sql}))"
            )
            args += values
        return _where(clauses), args

    # Writes

    def insert_thread(self, thread: ThreadRecord) -> Clause:
        """Returns a row when the thread was inserted (a fetch, which in a Postgres pipeline
        is what waits for the answer)."""
        d = self.d
        sql = (
            f"INSERT INTO gw_threads ({self.names(self.threads)}) VALUES (?, ?, ?, ?, {d.jsonb}, ?, {d.jsonb}, "
            f"{d.json}, {d.json}, {d.json}) ON CONFLICT DO NOTHING RETURNING 1"
        )
        args = [thread.thread_id, thread.created_at, thread.updated_at, thread.state_updated_at]
        args += [json_text(thread.metadata), thread.status, json_text(thread.config)]
        args += [d.data(thread.values), d.data(thread.interrupts), d.data(thread.error)]
        return d.sql(sql), args

    def thread_sets(self, change: ThreadChange, *, keep_status: bool = False) -> Clause:
        """The SET list of an UPDATE of gw_threads that makes `change` (without its status when
        `keep_status`: the caller sets that), and its arguments, in the dialect's placeholders."""
        names = ["updated_at = ?"]
        values: list[Any] = [now_iso()]
        for name in ("state_updated_at",) if keep_status else ("status", "state_updated_at"):
            if getattr(change, name) is not None:
                names.append(f"{name} = ?")
                values.append(getattr(change, name))
        for name in ("values", "interrupts", "error"):
            data = getattr(change, name)
            if data is not None:
                names.append(f'"{name}" = {self.d.json}')
                values.append(self.d.data(data))
        for name in ("metadata", "config"):
            if getattr(change, name) is not None:
                names.append(f"{name} = {self.d.jsonb}")
                values.append(json_text(getattr(change, name)))
        return self.d.sql(", ".join(names)), values

    def change_thread(self, thread_id: str, change: ThreadChange) -> Clause:
        sets, values = self.thread_sets(change)
        return self.d.sql(f"UPDATE gw_threads SET {sets} WHERE thread_id = ?"), [*values, thread_id]

    def run_values(self, run: RunRecord) -> tuple[Any, ...]:
        """A run's columns (`runs`) as an INSERT writes them."""
        return (
            *(run.run_id, run.thread_id, run.assistant_id, run.created_at, run.updated_at, run.status),
            *(json_text(run.metadata), run.multitask_strategy, json_text(run.kwargs), run.attempt),
        )

    def _assistant_values(self, assistant: AssistantRecord) -> list[Any]:
        return [json_text(assistant.config), json_text(assistant.context), json_text(assistant.metadata)]

    def insert_assistant(self, assistant: AssistantRecord) -> Clause:
        j = self.d.jsonb
        sql = (
            f"INSERT INTO gw_assistants ({self.names(self.assistants)}) VALUES (?, ?, ?, ?, ?, {j}, {j}, {j}, ?, ?) "
            "ON CONFLICT DO NOTHING"
        )
        args = [assistant.assistant_id, assistant.graph_id, assistant.name, assistant.created_at, assistant.updated_at]
        return self.d.sql(sql), [*args, *self._assistant_values(assistant), assistant.version, assistant.description]

    def insert_version(self, assistant: AssistantRecord) -> Clause:
        j = self.d.jsonb
        sql = (
            "INSERT INTO gw_assistant_versions (assistant_id, version, graph_id, name, created_at, config, context, "
            f"metadata, description) VALUES (?, ?, ?, ?, ?, {j}, {j}, {j}, ?) ON CONFLICT DO NOTHING"
        )
        args = [assistant.assistant_id, assistant.version, assistant.graph_id, assistant.name, assistant.updated_at]
        return self.d.sql(sql), [*args, *self._assistant_values(assistant), assistant.description]

    def make_latest(self, assistant: AssistantRecord) -> Clause:
        j = self.d.jsonb
        sql = (
            f"UPDATE gw_assistants SET graph_id = ?, name = ?, updated_at = ?, config = {j}, context = {j}, "
            f"metadata = {j}, version = ?, description = ? WHERE assistant_id = ?"
        )
        args = [assistant.graph_id, assistant.name, assistant.updated_at, *self._assistant_values(assistant)]
        return self.d.sql(sql), [*args, assistant.version, assistant.description, assistant.assistant_id]

    def insert_cron(self, cron: CronRecord) -> Clause:
        d = self.d
        sql = (
            f"INSERT INTO gw_crons ({self.names(self.crons)}) VALUES "
            f"(?, ?, ?, ?, ?, ?, ?, ?, {d.jsonb}, {d.jsonb}, ?, ?, ?, ?)"
        )
        args = [cron.cron_id, cron.assistant_id, cron.thread_id, cron.user_id, cron.schedule, cron.timezone]
        args += [d.moment(cron.end_time), d.moment(cron.next_run_date), json_text(cron.payload)]
        args += [json_text(cron.metadata), cron.on_run_completed, d.flag(cron.enabled), cron.created_at]
        return d.sql(sql), [*args, cron.updated_at]

    def cron_sets(self, change: CronChange) -> Clause:
        d = self.d
        names: list[str] = ["updated_at = ?"]
        values: list[Any] = [now_iso()]
        chosen = {"schedule": change.schedule, "timezone": change.timezone, "on_run_completed": change.on_run_completed}
        chosen |= {"next_run_date": d.moment(change.next_run_date), "end_time": d.moment(change.end_time)}
        chosen["enabled"] = None if change.enabled is None else d.flag(change.enabled)
        for name, value in chosen.items():
            if value is not None:
                names.append(f"{name} = ?")
                values.append(value)
        if change.clear_end_time:
            names.append("end_time = NULL")
        for name in ("payload", "metadata"):
            if getattr(change, name) is not None:
                names.append(f"{name} = {d.jsonb}")
                values.append(json_text(getattr(change, name)))
        return ", ".join(names), values
