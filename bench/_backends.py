"""The scale-out deployments' backends: the project's machines run PostgreSQL at 127.0.0.1:5432
and Redis at 127.0.0.1:6379 (BENCH_POSTGRES and BENCH_REDIS name others). Each deployment the
benchmark starts gets a database and a Redis key prefix of its own, both removed afterwards, as
the tests' do (tests/_backends.py): replicas of one deployment share them, deployments never."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import redis

POSTGRES = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def unreachable() -> str | None:
    """Why the scale-out deployments cannot run here, or None if both backends answer."""
    try:
        with psycopg.connect(POSTGRES, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        return f"Postgres at {POSTGRES} is unreachable ({str(exc).strip().splitlines()[0]})"
    client = redis.Redis.from_url(REDIS, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis at {REDIS} is unreachable ({exc})"
    finally:
        client.close()
    return None


def versions() -> dict[str, str | None]:
    """The servers' versions, for the report's preamble."""
    out: dict[str, str | None] = {"postgres": None, "redis": None}
    try:
        with psycopg.connect(POSTGRES, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            out["postgres"] = str(row[0]).split()[0] if row else None
        client = redis.Redis.from_url(REDIS, socket_connect_timeout=3)
        try:
            out["redis"] = str(client.info("server").get("redis_version"))
        finally:
            client.close()
    except (psycopg.Error, redis.RedisError):
        pass
    return out


@contextmanager
def _database() -> Iterator[str]:
    name = f"gw_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(POSTGRES, name)
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            # Its connections closed by force: a killed replica's may linger.
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _prefix() -> Iterator[str]:
    prefix = f"gw-bench:{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            for i in range(0, len(keys), 1000):
                client.delete(*keys[i : i + 1000])
        finally:
            client.close()


@contextmanager
def shared_backends() -> Iterator[tuple[str, ...]]:
    """`python -m gateway serve` arguments for one deployment: a new database and key prefix."""
    with _database() as url, _prefix() as prefix:
        yield ("--database-url", url, "--redis-url", REDIS, "--redis-prefix", prefix)
