"""The Postgres backend's schema, created and migrated at start under an advisory lock, so that
processes can start together: each migration runs once, in order, in its own transaction.

Graph data (`values`, `interrupts`, `error`) is kept as `json`, which keeps the text the run
produced byte for byte; metadata is `jsonb`, searched by containment (`@>`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection

# pg_advisory_lock key under which the schema is created and migrated ("lggw" in ASCII).
SCHEMA_LOCK = 0x6C676777


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


MIGRATIONS = (
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


async def migrate(conn: AsyncConnection[Any]) -> None:
    """Brings the schema up to date (on an autocommit connection, rows as dicts, holding
    SCHEMA_LOCK)."""
    await conn.execute("CREATE TABLE IF NOT EXISTS gw_schema (version integer NOT NULL)")
    cur = await conn.execute("SELECT max(version) AS v FROM gw_schema")
    row: Any = await cur.fetchone()
    version = -1 if row is None or row["v"] is None else int(row["v"])
    for number, migration in enumerate(MIGRATIONS):
        if number > version:
            async with conn.transaction():
                await conn.execute(migration)
                await conn.execute("INSERT INTO gw_schema (version) VALUES (%s)", (number,))
