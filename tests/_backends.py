"""The project's machines run PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379: each
test that uses them gets a database, or a key prefix, of its own, removed after it."""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
import redis

POSTGRES = os.environ.get("GATEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("GATEWAY_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def _execute(sql: str) -> None:
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(sql)


def _drop(name: str) -> None:
    _execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _set_up_schema(url: str) -> None:
    # The gateway's own setup, as a gateway starting on an empty database runs it: the storage's
    # tables and migrations, then the store's.
    from gateway.config.store import StoreConfig
    from gateway.storage.postgres import PostgresStorage
    from gateway.storage.store import Store

    storage = PostgresStorage(url)
    await storage.setup()
    try:
        store = Store(StoreConfig())
        await store.open(storage)
        await store.close()
    finally:
        await storage.close()


_template_lock = threading.Lock()
_template: str | None = None


def _schema_template() -> str:
    """A database with the gateway's schema, made once per process (each xdist worker has its
    own, by name) for the databases copied from it; dropped when the process exits."""
    global _template
    with _template_lock:
        if _template is None:
            name = f"gw_template_{uuid.uuid4().hex[:12]}"
            _execute(f'CREATE DATABASE "{name}"')
            atexit.register(_drop, name)
            # In a thread of its own: the caller may be on an event loop.
            with ThreadPoolExecutor(1) as thread:
                thread.submit(asyncio.run, _set_up_schema(_with_database(POSTGRES, name))).result()
            _template = name
        return _template


# Databases are dropped in the background (a drop waits for Postgres to remove the files, up
# to a second on a busy machine): the pool finishes its queue before the process exits.
_dropping = ThreadPoolExecutor(2, thread_name_prefix="drop-database")


@contextmanager
def postgres_database(*, schema: bool = False) -> Iterator[str]:
    """The URL of a new database, dropped afterwards (its connections closed by force): empty,
    or with `schema`, holding the gateway's schema as its setup leaves it on an empty database
    (a copy of a template made once, instead of every test's migrations)."""
    name = f"gw_test_{uuid.uuid4().hex[:12]}"
    template = f' TEMPLATE "{_schema_template()}"' if schema else ""
    _execute(f'CREATE DATABASE "{name}"{template}')
    try:
        yield _with_database(POSTGRES, name)
    finally:
        _dropping.submit(_drop, name)


@contextmanager
def redis_prefix() -> Iterator[str]:
    """A key prefix of the test's own; every key under it is deleted afterwards."""
    prefix = f"gw-test:{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


class Switch:
    """A TCP proxy to a backend, in a thread of its own, that can be cut (every connection
    closed, new ones refused) and restored: a backend lost and back, without touching the
    machine's server."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._open = True
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> Switch:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        ).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def cut(self) -> None:
        def close_all() -> None:
            self._open = False
            for writer in list(self._writers):
                writer.close()

        self._loop.call_soon_threadsafe(close_all)

    def restore(self) -> None:
        self._loop.call_soon_threadsafe(setattr, self, "_open", True)

    def stop(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()
                self._writers.discard(dst)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
