"""The store as clients see it (the `/store` routes, the gRPC StoreService): put, get, delete,
search and list namespaces, each first put to langgraph.json's `@auth.on.store` handlers with
the values the LangGraph Agent Server gives them. A handler may refuse, or change the value it
is given (prefix the namespace with the caller's identity, say); the operation then applies to
what the handler left, checked again. A handler's filter applies to searches, where it joins
the search's own filter on the items' values (items have no metadata); as on the Agent Server,
a filter returned for a put, get, delete or namespace listing is not applied (the docs' global
`@auth.on` handler returns an owner filter for every action, and items put through the API
carry no owner), so scope the store by namespace, as the Agent Server's docs advise.

Graphs use the store directly (gateway.storage.store), with no handler in between."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from langgraph.store.base import NOT_PROVIDED, BaseStore, Item, SearchItem

from gateway.auth import InvalidFilter
from gateway.core.access import Access
from gateway.shared.errors import BadRequest, InvalidArgument, shown
from gateway.shared.limits import check_filter
from gateway.shared.records import AccessFilter, Contains, Equals
from gateway.storage.store import Store

Json = dict[str, Any]
# About 1,900 years: an expiry time past it would be past what a datetime holds (year 9999).
MAX_TTL_MINUTES = 10**9
# What a put's `index` may be: the store's configured fields (None), none (False), or these.
Index = bool | list[str] | None


def check_namespace(namespace: Any, what: str = "namespace", *, empty: bool = True) -> tuple[str, ...]:
    """A namespace as the Agent Server accepts one: labels that are non-empty strings without
    periods (a GET names the namespace as its labels joined by periods)."""
    if not isinstance(namespace, (list, tuple)):
        raise InvalidArgument(f"{what} must be a list of labels")
    for label in namespace:
        if not isinstance(label, str) or not label or "." in label:
            raise InvalidArgument(f"{what}: label {shown(label)} must be a non-empty string without periods")
    if not empty and not namespace:
        raise BadRequest("Namespace cannot be empty.", field="namespace")
    return tuple(namespace)


def _timestamp(value: datetime) -> str:
    # LangGraph's sqlite store keeps UTC times without their zone.
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()


def item_json(item: Item) -> Json:
    out: Json = {
        "namespace": list(item.namespace),
        "key": item.key,
        "value": item.value,
        "created_at": _timestamp(item.created_at),
        "updated_at": _timestamp(item.updated_at),
    }
    if isinstance(item, SearchItem):
        out["score"] = item.score
    return out


def _store_filter(access: AccessFilter) -> dict[str, Any] | None:
    """An auth filter as a store filter: equalities on the item's value; None when nothing can
    match it. The store has no `$contains` or `$or`: refusing beats applying a filter in part."""
    if access.any_of or any(isinstance(c, Contains) for c in access.conditions):
        raise InvalidFilter(
            "an @auth.on.store handler's filter uses $contains or $or, which the store's search cannot apply: "
            "return equalities on the item's value"
        )
    out: dict[str, Any] | None = {}
    for condition in access.conditions:
        assert isinstance(condition, Equals)
        out = _both(out, {condition.key: condition.value})
    for group in access.all_of:
        inner = _store_filter(group)
        out = None if inner is None else _both(out, inner)
    return out


def _ops(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping) and value and all(str(k).startswith("$") for k in value):
        return dict(value)
    return {"$eq": value}


def _both(mine: dict[str, Any] | None, theirs: dict[str, Any]) -> dict[str, Any] | None:
    """A filter that holds where both hold; None when they give one operator on one key two
    different values (nothing can match)."""
    if mine is None:
        return None
    out = dict(mine)
    for key, value in theirs.items():
        if key not in out:
            out[key] = value
            continue
        ops = _ops(out[key])
        for op, wanted in _ops(value).items():
            if op in ops and ops[op] != wanted:
                return None
            ops[op] = wanted
        out[key] = ops
    return out


class StoreService:
    def __init__(self, store: Store, access: Access) -> None:
        self._store = store
        self._access = access

    @property
    def _base(self) -> BaseStore:
        return self._store.store

    async def put(
        self,
        namespace: Sequence[str],
        key: str,
        value: dict[str, Any],
        *,
        index: Index = None,
        ttl: float | None = None,
    ) -> None:
        """Stores `value`, expiring `ttl` minutes after its last write (or read, with refresh);
        None: the store's `ttl.default_ttl`, which is none unless configured."""
        if index is True:
            raise InvalidArgument("index must be false, a list of field paths, or null")
        # Written as `not (...)` so that NaN, which compares false, is refused too.
        if ttl is not None and not 0 < ttl <= MAX_TTL_MINUTES:
            raise InvalidArgument(f"ttl must be a positive number of minutes, at most {MAX_TTL_MINUTES:,}")
        request: Json = {
            "namespace": check_namespace(namespace),
            "key": key,
            "value": value,
            "index": index,
            "ttl": ttl,
        }
        await self._access.check("store", "put", request)
        await self._call(
            self._base.aput(
                check_namespace(request["namespace"], empty=False),
                request["key"],
                request["value"],
                index=request["index"],
                ttl=NOT_PROVIDED if request["ttl"] is None else request["ttl"],
            )
        )

    async def get(self, namespace: Sequence[str], key: str, *, refresh_ttl: bool | None = None) -> Json | None:
        request: Json = {"namespace": check_namespace(namespace), "key": key, "refresh_ttl": refresh_ttl}
        await self._access.check("store", "get", request)
        item = await self._call(
            self._base.aget(check_namespace(request["namespace"]), request["key"], refresh_ttl=request["refresh_ttl"])
        )
        return item_json(item) if item is not None else None

    async def delete(self, namespace: Sequence[str], key: str) -> None:
        request: Json = {"namespace": check_namespace(namespace), "key": key}
        await self._access.check("store", "delete", request)
        await self._call(self._base.adelete(check_namespace(request["namespace"]), request["key"]))

    async def search(
        self,
        namespace_prefix: Sequence[str],
        *,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        query: str | None = None,
        refresh_ttl: bool | None = None,
    ) -> list[Json]:
        if limit < 0 or offset < 0:
            raise InvalidArgument("limit and offset must not be negative")
        check_filter("filter", filter)
        request: Json = {
            "namespace": check_namespace(namespace_prefix, "namespace_prefix"),
            "filter": filter,
            "limit": limit,
            "offset": offset,
            "query": query,
            "refresh_ttl": refresh_ttl,
        }
        access = await self._access.check("store", "search", request)
        wanted: dict[str, Any] | None = request["filter"] or {}
        if access is not None:
            allowed = _store_filter(access)
            wanted = None if allowed is None else _both(wanted, allowed)
            if wanted is None:
                return []
        items = await self._call(
            self._base.asearch(
                check_namespace(request["namespace"], "namespace_prefix"),
                filter=wanted or None,
                limit=request["limit"],
                offset=request["offset"],
                query=request["query"],
                refresh_ttl=request["refresh_ttl"],
            )
        )
        return [item_json(item) for item in items]

    async def list_namespaces(
        self,
        *,
        prefix: Sequence[str] | None = None,
        suffix: Sequence[str] | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[list[str]]:
        if limit < 0 or offset < 0:
            raise InvalidArgument("limit and offset must not be negative")
        if max_depth is not None and max_depth < 1:
            raise InvalidArgument("max_depth must be at least 1")
        request: Json = {
            "namespace": check_namespace(prefix, "prefix") if prefix else None,
            "suffix": check_namespace(suffix, "suffix") if suffix else None,
            "max_depth": max_depth,
            "limit": limit,
            "offset": offset,
        }
        await self._access.check("store", "list_namespaces", request)
        found = await self._call(
            self._base.alist_namespaces(
                prefix=check_namespace(request["namespace"], "prefix") if request["namespace"] else None,
                suffix=check_namespace(request["suffix"], "suffix") if request["suffix"] else None,
                max_depth=request["max_depth"],
                limit=request["limit"],
                offset=request["offset"],
            )
        )
        return [list(namespace) for namespace in found]

    @staticmethod
    async def _call(operation: Any) -> Any:
        # The store's ValueErrors are the request's fault (an empty namespace, a reserved
        # label, an unknown filter operator): 400, as the Agent Server answers them.
        try:
            return await operation
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
