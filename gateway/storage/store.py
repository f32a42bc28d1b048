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
import importlib
import importlib.util
import logging
import math
import operator
import sqlite3
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from langchain_core.embeddings import Embeddings
from langgraph.store.base import BaseStore, Op, PutOp, Result, SearchOp, TTLConfig, ensure_embeddings
from langgraph.store.sqlite import SqliteStore

from gateway.shared.compat import _group_ops
from gateway.storage.base import Storage

if TYPE_CHECKING:
    from gateway.storage.postgres import PostgresStorage

logger = logging.getLogger("gateway.store")

# Minutes between sweeps of expired items when the config names none (LangGraph's default).
SWEEP_MINUTES = 5.0
_INDEX_KEYS = ("embed", "dims", "fields")
_TTL_KEYS = ("default_ttl", "refresh_on_read", "sweep_interval_minutes")


class StoreConfigError(ValueError):
    """langgraph.json's `store` section cannot be applied; the message names the key."""


@dataclass(frozen=True)
class StoreConfig:
    # The semantic index: the embeddings model, its vectors' size, and the value's fields to
    # embed (None: the whole value). No model: no semantic search.
    embeddings: Embeddings | None = None
    dims: int | None = None
    fields: tuple[str, ...] | None = None
    # Minutes an item lives after its last write (or read, with refresh_on_read); None: forever.
    default_ttl: float | None = None
    refresh_on_read: bool = True
    sweep_minutes: float = SWEEP_MINUTES
    # `path`: the user's store, loaded (a BaseStore, or what gives one).
    custom: Any = None
    ignored: tuple[str, ...] = field(default=(), compare=False)

    @property
    def ttl(self) -> TTLConfig:
        ttl: TTLConfig = {"refresh_on_read": self.refresh_on_read, "sweep_interval_minutes": None}
        if self.default_ttl is not None:
            ttl["default_ttl"] = self.default_ttl
        return ttl

    def index(self, *, text_fields: bool = False) -> dict[str, Any] | None:
        if self.embeddings is None:
            return None
        index: dict[str, Any] = {"embed": self.embeddings, "dims": self.dims}
        if self.fields is not None:
            # LangGraph's SqliteStore reads the fields to embed from `text_fields`.
            index["text_fields" if text_fields else "fields"] = list(self.fields)
        return index


def _number(section: dict[str, Any], key: str, where: str) -> float | None:
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise StoreConfigError(f"{where}.{key} must be a positive number of minutes, not {value!r}")
    return float(value)


def _import(ref: str, base: Path, what: str) -> Any:
    """The object named by "./file.py:name" (relative to the config) or "module:name"."""
    target, _, attr = ref.rpartition(":")
    try:
        if target.endswith(".py") or "/" in target:
            file = (base / target).resolve()
            name = f"_gateway_store.{file.stem}"
            spec = importlib.util.spec_from_file_location(name, file)
            if spec is None or spec.loader is None or not file.is_file():
                raise StoreConfigError(f"{what}: cannot load {file}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except StoreConfigError:
        raise
    except Exception as exc:
        raise StoreConfigError(f"{what}: importing {target!r} failed: {type(exc).__name__}: {exc}") from exc
    if not hasattr(module, attr):
        raise StoreConfigError(f"{what}: {target!r} has no attribute {attr!r}")
    return getattr(module, attr)


def _embeddings(ref: Any, base: Path) -> Embeddings:
    if not isinstance(ref, str) or ":" not in ref:
        raise StoreConfigError(
            "store.index.embed must be './file.py:name' (an Embeddings or an embedding function) or "
            "'provider:model' (for langchain's init_embeddings)"
        )
    if ".py:" in ref:
        found = _import(ref, base, "store.index.embed")
        if not isinstance(found, Embeddings) and not callable(found):
            raise StoreConfigError(f"store.index.embed: {ref!r} is a {type(found).__name__}, not an embeddings model")
        return ensure_embeddings(found)
    try:
        from langchain.embeddings import init_embeddings
    except ImportError:
        raise StoreConfigError(
            f"store.index.embed: {ref!r} names a provider's model, which needs the langchain package "
            "(pip install 'langchain>=0.3.9'); or give './file.py:name'"
        ) from None
    try:
        return cast(Embeddings, init_embeddings(ref))
    except Exception as exc:
        raise StoreConfigError(f"store.index.embed: {ref!r}: {type(exc).__name__}: {exc}") from None


def parse_store(section: Any, base: Path) -> StoreConfig:
    """langgraph.json's `store` section (None: the defaults); paths are relative to `base`."""
    if section is None:
        return StoreConfig()
    if not isinstance(section, dict):
        raise StoreConfigError("'store' must be an object")
    ignored = [f"store.{key} (unknown)" for key in section if key not in ("index", "ttl", "path")]
    if section.get("path"):
        if not isinstance(section["path"], str) or ":" not in section["path"]:
            raise StoreConfigError("store.path must be './file.py:name' or 'module:name'")
        ignored += [f"store.{key} (a custom store's own)" for key in ("index", "ttl") if key in section]
        return StoreConfig(custom=_import(section["path"], base, "store.path"), ignored=tuple(ignored))
    kwargs: dict[str, Any] = {}
    index = section.get("index")
    if index is not None:
        if not isinstance(index, dict) or "embed" not in index:
            raise StoreConfigError("store.index must be an object with 'embed' (and 'dims', 'fields')")
        ignored += [f"store.index.{key} (unknown)" for key in index if key not in _INDEX_KEYS]
        kwargs["embeddings"] = _embeddings(index["embed"], base)
        dims = index.get("dims")
        if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims <= 0):
            raise StoreConfigError(f"store.index.dims must be a positive integer, not {dims!r}")
        kwargs["dims"] = dims
        fields = index.get("fields")
        if fields is not None:
            if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
                raise StoreConfigError("store.index.fields must be a list of field paths")
            kwargs["fields"] = tuple(fields)
    ttl = section.get("ttl")
    if ttl is not None:
        if not isinstance(ttl, dict):
            raise StoreConfigError("store.ttl must be an object")
        ignored += [f"store.ttl.{key} (unknown)" for key in ttl if key not in _TTL_KEYS]
        kwargs["default_ttl"] = _number(ttl, "default_ttl", "store.ttl")
        kwargs["sweep_minutes"] = _number(ttl, "sweep_interval_minutes", "store.ttl") or SWEEP_MINUTES
        refresh = ttl.get("refresh_on_read", True)
        if not isinstance(refresh, bool):
            raise StoreConfigError(f"store.ttl.refresh_on_read must be true or false, not {refresh!r}")
        kwargs["refresh_on_read"] = refresh
    return StoreConfig(**kwargs, ignored=tuple(ignored))


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
    from gateway.config import ConfigError
    from gateway.storage._pgstore import PooledPostgresStore
    from gateway.storage.postgres import advisory_lock

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
        from gateway.config import ConfigError

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
