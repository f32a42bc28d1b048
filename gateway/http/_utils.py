"""Small helpers of the HTTP routes: JSON in and out, query flags, path ids."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.http._errors import PayloadTooLarge
from gateway.shared.errors import InvalidArgument, shown
from gateway.shared.run_body import type_name
from gateway.shared.serde import MAX_NESTING, check_nesting, dumps
from gateway.shared.util import digits, is_uuid

if TYPE_CHECKING:
    from gateway.http._backend import Backend

T = TypeVar("T")


def backend(request: Request) -> Backend:
    found: Backend = request.app.state.backend
    return found


def json_response(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(dumps(content), status, headers=headers, media_type="application/json")


async def read_body(request: Request) -> bytes:
    """The request's body, refused as soon as it is known to be over the limit."""
    limit: int = request.app.state.max_body_bytes
    too_large = PayloadTooLarge(f"Request body too large (limit: {limit} bytes)")
    length = request.headers.get("content-length")
    if length is not None and digits(length) and int(length) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, *, empty: Any = None) -> Any:
    """The request's JSON body; `empty` stands for a missing body where one is optional."""
    body = await read_body(request)
    if not body.strip() and empty is not None:
        return empty
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):
            # orjson stops parsing far deeper than a field may nest.
            raise InvalidArgument(f"the request body is nested more than {MAX_NESTING} levels deep") from None
        raise InvalidArgument("Invalid JSON in request body") from None


async def read_object(request: Request, *, optional: bool = False) -> dict[str, Any]:
    body = await read_json(request, empty={} if optional else None)
    if not isinstance(body, dict):
        raise InvalidArgument(f"the request body must be a JSON object, not {type_name(body)}")
    check_fields(body)
    return body


def check_fields(body: dict[str, Any]) -> None:
    """Each field of a body nests at most as deep as the gRPC edge can send it back."""
    for name, value in body.items():
        check_nesting(value, name)


def idempotency_key(request: Request) -> str | None:
    """The Idempotency-Key header: the HTTP edge's request_id (a UUID)."""
    value = request.headers.get("idempotency-key")
    if value is None or value == "":
        return None
    if not is_uuid(value):
        raise InvalidArgument(f"Idempotency-Key {value!r} is not a UUID")
    return value


def flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "yes", "1")


def path_uuid(request: Request, name: str) -> str:
    value: str = request.path_params[name]
    if not is_uuid(value):
        # 422 on every route, as the Agent Server's own check of path ids answers. (Its in-memory
        # runtime answers 400 on the stream and wait routes of a thread, where its stream
        # manager's ValueError about the id comes first.)
        raise InvalidArgument(f"Invalid {name.replace('_', ' ').removesuffix(' id')} ID: {shown(value)} must be a UUID")
    return value


# The largest limit or offset: the gRPC messages that carry them to the core (the bridge) are int32.
INT32_MAX = 2**31 - 1


def body_page(body: dict[str, Any]) -> tuple[int, int]:
    """A search body's `limit` (1 to 1000, 10 when absent) and `offset` (0 to INT32_MAX)."""
    return _body_int(body, "limit", 10, 1, 1000), _body_int(body, "offset", 0, 0, INT32_MAX)


def _body_int(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidArgument(f"{name} must be an integer from {low} to {high}, not {shown(value)}")
    return value


def query_int(request: Request, name: str, default: int, *, minimum: int = 0, maximum: int = INT32_MAX) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgument(f"{name} must be an integer, not {shown(raw)}") from None
    if value < minimum:
        raise InvalidArgument(f"{name} must be at least {minimum}")
    if value > maximum:
        # sqlite, and so the storage, takes at most 64-bit integers.
        raise InvalidArgument(f"{name} must be at most {maximum}")
    return value


def pagination_headers(count: int, limit: int, offset: int) -> dict[str, str]:
    """Headers of a search that asked for `limit + 1` rows and got `count`."""
    if count > limit:
        return {"X-Pagination-Total": str(offset + limit + 1), "X-Pagination-Next": str(offset + limit)}
    return {"X-Pagination-Total": str(offset + count)}


@asynccontextmanager
async def iterating(source: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Closes an async generator as soon as the loop over it stops, not when it is collected:
    its cleanup (leaving a run's channel) must not wait for the garbage collector."""
    try:
        yield source
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
