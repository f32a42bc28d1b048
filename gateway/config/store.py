"""langgraph.json's `store` section: the semantic index (an embeddings model, its size, the
fields to embed), the TTL of items, or `store.path`, the user's own store. Parsed here; opened
by gateway.storage.store on the storage's database."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from langchain_core.embeddings import Embeddings
from langgraph.store.base import TTLConfig, ensure_embeddings

from gateway.config.loader import ConfigError, load_object

# Minutes between sweeps of expired items when the config names none (LangGraph's default).
SWEEP_MINUTES = 5.0
_INDEX_KEYS = ("embed", "dims", "fields")
_TTL_KEYS = ("default_ttl", "refresh_on_read", "sweep_interval_minutes")


class StoreConfigError(ConfigError):
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


def _embeddings(ref: Any, base: Path) -> Embeddings:
    if not isinstance(ref, str) or ":" not in ref:
        raise StoreConfigError(
            "store.index.embed must be './file.py:name' (an Embeddings or an embedding function) or "
            "'provider:model' (for langchain's init_embeddings)"
        )
    if ".py:" in ref:
        found = load_object(ref, base, key="store.index.embed", namespace="_gateway_store", error=StoreConfigError)
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
        custom = load_object(
            section["path"], base, key="store.path", namespace="_gateway_store", error=StoreConfigError
        )
        return StoreConfig(custom=custom, ignored=tuple(ignored))
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
