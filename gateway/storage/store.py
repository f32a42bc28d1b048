"""The long-term memory store (LangGraph's `BaseStore`) that every run gets, and that the `/store`
routes and the gRPC StoreService read and write, configured by langgraph.json's `store` section.

- sqlite (the default): LangGraph's `SqliteStore` on the storage's own connection and lock, its
  async methods run in place as the checkpointer's are (gateway.storage.sqlite): a second
  connection to the same file would wait on sqlite's file lock (blocking the event loop for up
  to the busy timeout) whenever a run's checkpoint write held it. Embedding texts is the one
  slow step (a model call): it is done before the lock is taken, awaited when the call is async.
- Postgres: LangGraph's `AsyncPostgresStore` on the storage's pool, its schema set up under an
  advisory lock (as the storage's), so replicas may start together. Semantic search needs the
  pgvector extension, as on the Agent Server.
- `store.path`: the user's own store, as the Agent Server loads one (a `BaseStore`, or a function
  or (async) context manager giving one); the built-in store's `index` and `ttl` then do not apply.

TTL: items past their expiry are never read (sqlite deletes them as each operation starts;
Postgres filters them), and a sweeper deletes the rest every `ttl.sweep_interval_minutes`
(5 by default)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import operator
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from langchain_core.embeddings import Embeddings
from langgraph.store.base import BaseStore, Op, PutOp, Result, SearchOp, TTLConfig
from langgraph.store.sqlite import SqliteStore

from gateway.config.loader import ConfigError
from gateway.config.store import StoreConfig
from gateway.shared.compat import _group_ops
from gateway.storage.base import Storage

if TYPE_CHECKING:
    from gateway.storage.postgres import PostgresStorage

logger = logging.getLogger("gateway.store")

# The sqlite store


@dataclass
class _Vectors:
    documents: dict[str, list[float]]
    queries: dict[str, list[float]]


# The vectors of the operation being run (set around the statements, read by _Prepared), and
# whether its statements are now embedding documents or search queries.
_VECTORS: ContextVar[_Vectors | None] = ContextVar("gateway_store_vectors", default=None)
_QUERYING: ContextVar[bool] = ContextVar("gateway_store_querying", default=False)


class _Prepared(Embeddings):
    """The model's vectors, computed before the statements ran; the model itself for any text
    that was not (no statement should ask for one)."""

    def __init__(self, model: Embeddings) -> None:
        self.model = model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        ready = _VECTORS.get()
        table = None if ready is None else ready.queries if _QUERYING.get() else ready.documents
        if table is not None and all(text in table for text in texts):
            return [table[text] for text in texts]
        if _QUERYING.get():
            return [self.model.embed_query(text) for text in texts]
        return self.model.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def _python_distances(conn: sqlite3.Connection) -> None:
    """sqlite-vec's distance functions over its float32 vectors, for a sqlite3 that cannot load
    the extension."""

    def floats(blob: bytes) -> memoryview[float]:
        return memoryview(blob).cast("f")

    def cosine(a: bytes, b: bytes) -> float | None:
        x, y = floats(a), floats(b)
        norms = math.sqrt(sum(map(operator.mul, x, x))) * math.sqrt(sum(map(operator.mul, y, y)))
        return 1.0 - sum(map(operator.mul, x, y)) / norms if norms else None

    def l2(a: bytes, b: bytes) -> float:
        return math.sqrt(sum((p - q) ** 2 for p, q in zip(floats(a), floats(b), strict=True)))

    def l1(a: bytes, b: bytes) -> float:
        return sum(abs(p - q) for p, q in zip(floats(a), floats(b), strict=True))

    conn.create_function("vec_distance_cosine", 2, cosine, deterministic=True)
    conn.create_function("vec_distance_L2", 2, l2, deterministic=True)
    conn.create_function("vec_distance_L1", 2, l1, deterministic=True)


_DROP_EXPIRED = "DELETE FROM store WHERE expires_at IS NOT NULL AND expires_at < CURRENT_TIMESTAMP"


class InlineSqliteStore(SqliteStore):
    """LangGraph's sqlite store on the storage's connection and lock, its async methods run in
    place (see the module's docstring)."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock, config: StoreConfig) -> None:
        super().__init__(conn, index=cast(Any, config.index(text_fields=True)), ttl=config.ttl)
        self.lock = lock
        self._model: Embeddings | None = self.embeddings
        if self.embeddings is not None:
            self.embeddings = _Prepared(self.embeddings)

    def setup(self) -> None:
        with self.lock:
            # The store's vectors go with their item (ON DELETE CASCADE): a replaced or deleted
            # item's old vectors must not match searches. No other table of the file has keys.
            self.conn.execute("PRAGMA foreign_keys=ON")
        if self.index_config is None or hasattr(self.conn, "enable_load_extension"):
            super().setup()
            return
        logger.warning(
            "this Python's sqlite3 cannot load extensions (sqlite-vec): the store's semantic search computes "
            "distances in Python, which is slower on large stores"
        )
        index, self.index_config = self.index_config, None
        try:
            super().setup()
        finally:
            self.index_config = index
        with self.lock:
            _python_distances(self.conn)
            self.conn.execute("CREATE TABLE IF NOT EXISTS vector_migrations (v INTEGER PRIMARY KEY)")
            row = self.conn.execute("SELECT v FROM vector_migrations ORDER BY v DESC LIMIT 1").fetchone()
            version = -1 if row is None else int(row[0])
            for number, sql in enumerate(self.VECTOR_MIGRATIONS[version + 1 :], start=version + 1):
                self.conn.executescript(sql)
                self.conn.execute("INSERT INTO vector_migrations (v) VALUES (?)", (number,))

    @contextmanager
    def _cursor(self, *, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        # As LangGraph's, but a failed operation rolls back rather than commit what it did, and
        # every operation first deletes the items that have expired, so that none is read.
        if not self.is_setup:
            self.setup()
        with self.lock:
            if transaction:
                self.conn.execute("BEGIN")
            cur = self.conn.cursor()
            try:
                if transaction:
                    cur.execute(_DROP_EXPIRED)
                yield cur
            except BaseException:
                if transaction:
                    self.conn.execute("ROLLBACK")
                raise
            else:
                if transaction:
                    self.conn.execute("COMMIT")
            finally:
                cur.close()

    def _texts(self, ops: Sequence[Op]) -> tuple[list[str], list[str]]:
        """The documents and the search queries `ops` will embed."""
        if self._model is None:
            return [], []
        grouped, _ = _group_ops(ops)
        documents: list[str] = []
        if PutOp in grouped:
            _, request = self._prepare_batch_PUT_queries(cast(Sequence[tuple[int, PutOp]], grouped[PutOp]))
            if request is not None:
                documents = list(dict.fromkeys(str(params[-1]) for params in request[1]))
        queries: list[str] = []
        if SearchOp in grouped:
            _, requests = self._prepare_batch_search_queries(cast(Sequence[tuple[int, SearchOp]], grouped[SearchOp]))
            queries = list(dict.fromkeys(text for _, text in requests))
        return documents, queries

    def _run(self, ops: Sequence[Op], vectors: _Vectors | None) -> list[Result]:
        token = _VECTORS.set(vectors)
        try:
            return super().batch(ops)
        finally:
            _VECTORS.reset(token)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        documents, queries = self._texts(ops)
        vectors = None
        if self._model is not None and (documents or queries):
            vectors = _Vectors(
                dict(zip(documents, self._model.embed_documents(documents), strict=True)) if documents else {},
                {text: self._model.embed_query(text) for text in queries},
            )
        return self._run(ops, vectors)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        documents, queries = self._texts(ops)
        vectors = None
        if self._model is not None and (documents or queries):
            embedded = await self._model.aembed_documents(documents) if documents else []
            searched = await asyncio.gather(*(self._model.aembed_query(text) for text in queries))
            vectors = _Vectors(dict(zip(documents, embedded, strict=True)), dict(zip(queries, searched, strict=True)))
        return self._run(ops, vectors)

    def sweep_ttl(self) -> int:
        with self.lock:
            return self.conn.execute(_DROP_EXPIRED).rowcount

    def _batch_search_ops(self, search_ops: Any, results: Any, cur: Any) -> None:
        token = _QUERYING.set(True)
        try:
            super()._batch_search_ops(search_ops, results, cur)
        finally:
            _QUERYING.reset(token)


# Postgres

# pg_advisory_lock key under which the store's schema is set up ("lgst" in ASCII).
_SCHEMA_LOCK = 0x6C677374


async def _postgres_store(storage: PostgresStorage, config: StoreConfig) -> BaseStore:
    from gateway.storage._pgstore import PooledPostgresStore
    from gateway.storage.sql.postgres_schema import advisory_lock

    index = config.index()
    # Made here: its batches of operations are collected on this loop (and run on the pool's).
    # Expired items are never read, swept or not.
    ttl: TTLConfig = {**config.ttl, "omit_expired": True}
    store = PooledPostgresStore(cast(Any, storage.pool), storage.io, index=cast(Any, index), ttl=ttl)

    async def setup() -> None:
        async with storage.pool.connection() as conn:
            if index is not None:
                cur = await conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
                if await cur.fetchone() is None:
                    raise ConfigError(
                        "store.index: semantic search on Postgres needs the pgvector extension, which this "
                        "server does not have: install pgvector, or remove store.index"
                    )
                if not config.dims:
                    raise ConfigError("store.index.dims is required on Postgres (the size of the vector column)")
            async with advisory_lock(conn, _SCHEMA_LOCK):
                await store.setup()

    await storage.io.run(setup())
    return store


# The store a gateway serves


async def _entered(stack: AsyncExitStack, value: Any) -> BaseStore:
    """The user's store from what `store.path` named, entered on `stack` when it is a context."""
    if callable(value) and not isinstance(value, BaseStore):
        value = value()
    if asyncio.iscoroutine(value):
        value = await value
    if hasattr(value, "__aenter__"):
        value = await stack.enter_async_context(value)
    elif hasattr(value, "__enter__"):
        value = stack.enter_context(value)
    if not isinstance(value, BaseStore):
        raise ConfigError(f"store.path gave a {type(value).__name__}, not a langgraph BaseStore")
    return value


class Store:
    """The store of a gateway: opened on its storage's database once that is set up, swept of
    expired items while serving, closed before the storage."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._store: BaseStore | None = None
        self._stack = AsyncExitStack()
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def store(self) -> BaseStore:
        if self._store is None:
            raise RuntimeError("the store is not open")
        return self._store

    async def open(self, storage: Storage) -> None:
        if self.config.custom is not None:
            self._store = await _entered(self._stack, self.config.custom)
            return
        from gateway.storage.sqlite import SqliteStorage

        if isinstance(storage, SqliteStorage):
            sqlite_store = InlineSqliteStore(storage.conn, storage.lock, self.config)
            sqlite_store.setup()
            self._store = sqlite_store
        else:
            from gateway.storage.postgres import PostgresStorage

            assert isinstance(storage, PostgresStorage)
            self._store = await _postgres_store(storage, self.config)
        self._sweeper = asyncio.create_task(self._sweep(), name="sweep-store")

    async def _sweep(self) -> None:
        store = self.store
        while True:
            await asyncio.sleep(self.config.sweep_minutes * 60)
            try:
                swept = (
                    store.sweep_ttl() if isinstance(store, InlineSqliteStore) else await cast(Any, store).sweep_ttl()
                )
            except Exception:
                logger.exception("sweeping the store's expired items failed; retrying at the next sweep")
                continue
            if swept:
                logger.info("swept %d expired store items", swept)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        # AsyncPostgresStore batches operations in a task of its own.
        task = getattr(self._store, "_task", None)
        if isinstance(task, asyncio.Task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._stack.aclose()
        self._store = None
