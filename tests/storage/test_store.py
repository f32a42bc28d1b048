"""The store on each backend's database, as the core uses it (gateway.storage.store,
gateway.core.store): TTLs, the sweeper, the semantic index's embeddings, langgraph.json's store
section and a custom store."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from langgraph.store.base import ensure_embeddings
from langgraph.store.memory import InMemoryStore

from gateway.config.loader import ConfigError
from gateway.config.store import StoreConfig, StoreConfigError, parse_store
from gateway.core.access import Access
from gateway.core.store import StoreService
from gateway.storage import SqliteStorage, Storage
from gateway.storage.postgres import PostgresStorage
from gateway.storage.store import Store
from tests._store import has_pgvector

OpenStore = Callable[..., Any]


@pytest.fixture
def open_store(storage: Storage) -> OpenStore:
    @asynccontextmanager
    async def make(config: StoreConfig) -> AsyncIterator[StoreService]:
        store = Store(config)
        await store.open(storage)
        try:
            yield StoreService(store, Access(None, storage))
        finally:
            await store.close()

    return make


async def _rows(storage: Storage) -> int:
    """The items the store's table holds, expired or not, read beside the store."""
    if isinstance(storage, SqliteStorage):
        with storage.lock:
            return int(storage.conn.execute("SELECT count(*) FROM store").fetchone()[0])
    assert isinstance(storage, PostgresStorage)
    pool = storage.pool

    async def count() -> int:
        async with pool.connection() as conn:
            row: Any = await (await conn.execute("SELECT count(*) AS n FROM store")).fetchone()
            return int(row["n"])

    # On the pool's own loop, where its connections live.
    return await storage.io.run(count())


async def _until(condition: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + 30
    while not await condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def test_the_default_ttl_applies_to_items_put_without_one(open_store: OpenStore) -> None:
    async with open_store(StoreConfig(default_ttl=0.01)) as store:  # 0.6 s
        await store.put(["ns"], "default", {"v": 1})
        await store.put(["ns"], "own", {"v": 2}, ttl=60)

        async def expired() -> bool:
            return await store.get(["ns"], "default", refresh_ttl=False) is None

        await _until(expired, "the item put without a ttl did not expire")
        assert [item["key"] for item in await store.search(["ns"])] == ["own"]


async def test_the_sweeper_deletes_expired_items_nobody_reads(open_store: OpenStore, storage: Storage) -> None:
    async with open_store(StoreConfig(sweep_minutes=0.005)) as store:  # every 0.3 s
        await store.put(["ns"], "short", {"v": 1}, ttl=0.01)
        await store.put(["ns"], "long", {"v": 2}, ttl=60)
        assert await _rows(storage) == 2

        async def swept() -> bool:
            return await _rows(storage) == 1

        await _until(swept, "the sweeper did not delete the expired item")


async def test_embeddings_are_awaited_outside_the_storage_lock(open_store: OpenStore, storage: Storage) -> None:
    calls: list[tuple[list[str], bool]] = []

    async def embed(texts: list[str]) -> list[list[float]]:
        # While the model is called, no statement holds the connection.
        locked = storage.lock.locked() if isinstance(storage, SqliteStorage) else False
        calls.append((list(texts), locked))
        await asyncio.sleep(0)
        return [[1.0, float(len(text)), 0.5] for text in texts]

    config = StoreConfig(embeddings=ensure_embeddings(embed), dims=3, fields=("text",))
    if isinstance(storage, PostgresStorage) and not has_pgvector():
        # The index needs pgvector: refused at start, by name, before any embedding.
        with pytest.raises(ConfigError, match="pgvector"):
            await Store(config).open(storage)
        assert calls == []
        return
    async with open_store(config) as store:
        await store.put(["ns"], "a", {"text": "short"})
        await store.put(["ns"], "b", {"text": "a longer text"})
        found = await store.search(["ns"], query="short")
        assert [item["key"] for item in found] == ["a", "b"]
        assert found[0]["score"] == pytest.approx(1.0, abs=1e-6)
    assert ["short"] in [texts for texts, _ in calls]
    assert not any(locked for _, locked in calls)


async def test_a_sync_call_from_a_worker_thread(open_store: OpenStore, storage: Storage) -> None:
    # A sync node runs in a worker thread and calls the store's sync methods.
    async with open_store(StoreConfig()) as service:
        base = service._store.store
        ran: list[str] = []

        def work() -> None:
            base.put(("ns",), "k", {"from": threading.current_thread().name})
            item = base.get(("ns",), "k")
            assert item is not None
            ran.append(item.value["from"])

        await asyncio.to_thread(work)
        assert ran and (await service.get(["ns"], "k")) is not None


def test_the_store_section(tmp_path: Path) -> None:
    (tmp_path / "embed.py").write_text("def embed(texts):\n    return [[1.0, 0.0] for _ in texts]\n")
    config = parse_store(
        {
            "index": {"embed": "./embed.py:embed", "dims": 2, "fields": ["text"], "extra": 1},
            "ttl": {"default_ttl": 5, "refresh_on_read": False, "sweep_interval_minutes": 2},
        },
        tmp_path,
    )
    assert config.embeddings is not None and config.embeddings.embed_query("x") == [1.0, 0.0]
    assert (config.dims, config.fields, config.default_ttl, config.refresh_on_read, config.sweep_minutes) == (
        2,
        ("text",),
        5.0,
        False,
        2.0,
    )
    assert config.ignored == ("store.index.extra (unknown)",)
    assert parse_store(None, tmp_path) == StoreConfig()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"index": {"dims": 4}}, "'embed'"),
        ({"index": {"embed": "./missing.py:embed"}}, "cannot load"),
        ({"index": {"embed": "nonsense"}}, "store.index.embed"),
        ({"index": {"embed": "./embed.py:embed", "dims": 0}}, "dims"),
        ({"ttl": {"default_ttl": -1}}, "default_ttl"),
        ({"ttl": {"refresh_on_read": "yes"}}, "refresh_on_read"),
        ({"path": "no-colon"}, "store.path"),
        ([], "must be an object"),
    ],
)
def test_a_wrong_store_section_is_named(tmp_path: Path, section: Any, message: str) -> None:
    (tmp_path / "embed.py").write_text("def embed(texts):\n    return [[1.0] for _ in texts]\n")
    with pytest.raises(StoreConfigError, match=message):
        parse_store(section, tmp_path)


async def test_a_custom_store(tmp_path: Path, storage: Storage) -> None:
    (tmp_path / "custom.py").write_text(
        "from contextlib import asynccontextmanager\n"
        "from langgraph.store.memory import InMemoryStore\n"
        "EXITED = []\n"
        "@asynccontextmanager\n"
        "async def make():\n"
        "    yield InMemoryStore()\n"
        "    EXITED.append(True)\n"
    )
    config = parse_store({"path": "./custom.py:make", "ttl": {"default_ttl": 1}}, tmp_path)
    assert config.ignored == ("store.ttl (a custom store's own)",)
    store = Store(config)
    await store.open(storage)
    assert isinstance(store.store, InMemoryStore)
    await StoreService(store, Access(None, storage)).put(["ns"], "k", {"v": 1})
    assert store.store.get(("ns",), "k") is not None
    await store.close()
    assert sys.modules["_gateway_store.custom"].EXITED == [True]
