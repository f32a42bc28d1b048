"""The sqlite backend's schema: created if absent, and the columns added since the first one."""

from __future__ import annotations

import sqlite3

SCHEMA = """
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
MIGRATIONS = (
    ("gw_runs", "attempt", "INTEGER NOT NULL DEFAULT 0"),
    ("gw_runs", "request", "BLOB"),
    ("gw_runs", "owner", "TEXT"),
    ("gw_runs", "lease_until", "REAL"),
)


def migrate(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)
    for table, column, definition in MIGRATIONS:
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in columns:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
