"""JSON encoding of graph data, once per event, with orjson and the same rules for
non-JSON types as the LangGraph Agent Server."""

from __future__ import annotations

import base64
import re
import sys
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import timedelta, timezone
from decimal import Decimal
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from pathlib import PurePath
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from gateway.shared.errors import InvalidArgument, shown

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_AS_STRING = (uuid.UUID, IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network, PurePath)
_SURROGATES = re.compile(r"[\ud800-\udfff]")


def _decimal(value: Decimal) -> int | float:
    if not value.is_finite() or int(value.as_tuple().exponent) < 0:
        return float(value)
    return int(value)


def _default(obj: Any) -> Any:
    # Looked up, not imported: the bridge process encodes with this module and has no LangGraph.
    types = sys.modules.get("langgraph.types")
    if types is not None and isinstance(obj, types.Send):
        return {"node": obj.node, "args": obj.arg}
    if isinstance(obj, type):
        return None
    # LangChain messages and other pydantic models.
    model_dump = getattr(obj, "model_dump", None)
    if callable(model_dump):
        return model_dump()
    for method in ("dict", "_asdict"):
        to_dict = getattr(obj, method, None)
        if callable(to_dict):
            return to_dict()
    if isinstance(obj, BaseException):
        from gateway.shared.graph_errors import error_payload

        return error_payload(obj)
    if isinstance(obj, (set, frozenset, deque)):
        return list(obj)
    if isinstance(obj, (timezone, ZoneInfo)):
        return obj.tzname(None)
    if isinstance(obj, timedelta):
        return obj.total_seconds()
    if isinstance(obj, Decimal):
        return _decimal(obj)
    if isinstance(obj, _AS_STRING):
        return str(obj)
    if isinstance(obj, re.Pattern):
        return obj.pattern
    if isinstance(obj, (bytes, bytearray)):
        return base64.b64encode(obj).decode()
    return None


def _sanitise(obj: Any) -> Any:
    if isinstance(obj, str):
        return _SURROGATES.sub("?", obj)
    if isinstance(obj, int) and not isinstance(obj, bool) and not -(2**63) <= obj < 2**64:
        return float(obj)
    if isinstance(obj, Mapping):
        return {_sanitise(k): _sanitise(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_sanitise(v) for v in obj]
    return obj


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON. Lone surrogates become "?" and NUL characters U+FFFD, so the
    text is always valid UTF-8 and safe to pass through every edge unchanged; integers past
    64 bits (Postgres gives 1e300 back as one) become floats, as JSON clients read them.

    The result is a right-sized copy: orjson (3.12 on) returns its working buffer, 4 KiB at
    least and often several times the JSON's length, and events are held for replay."""
    try:
        data = orjson.dumps(obj, default=_default, option=_OPTIONS)
    except TypeError as exc:
        if "surrogates not allowed" not in str(exc) and "64-bit" not in str(exc):
            raise
        data = orjson.dumps(_sanitise(obj), default=_default, option=_OPTIONS)
    if b"\\u0000" in data:
        return data.replace(b"\\\\u0000", b"\\\\ufffd").replace(b"\\u0000", b"\\ufffd")
    return bytes(memoryview(data))


def json_text(obj: Any) -> str:
    """JSON text of a value for storage, as orjson writes it, except that integers past 64
    bits become floats: Postgres reads 1e20 back as the integer 100000000000000000000, which
    orjson cannot write. NUL characters stay, for the database to refuse."""
    try:
        return orjson.dumps(obj).decode()
    except TypeError as exc:
        if "64-bit" not in str(exc):
            raise
        return orjson.dumps(_sanitise(obj)).decode()


loads: Callable[[bytes | str], Any] = orjson.loads


# Levels of arrays and objects ({} is one) that a JSON field of a request may nest, on every
# edge: what the gRPC edge can send back. Its replies carry such values as Structs, two
# protobuf messages per level, and protobuf's upb runtime cannot build a reply whose Struct
# nests more than 33 levels (a run's `kwargs` wrap its input, config and command in one more).
MAX_NESTING = 32


def too_deep(value: Any, levels: int = MAX_NESTING) -> list[str] | None:
    """The keys down to where `value` nests past `levels` objects or arrays, if it does."""
    if not isinstance(value, (dict, list)):
        return None
    if levels == 0:
        return []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if (below := too_deep(item, levels - 1)) is not None:
            return [str(key), *below]
    return None


def check_nesting(value: Any, name: str, levels: int = MAX_NESTING) -> None:
    """Refuses a request's field `name` that nests past `levels` (InvalidArgument, naming it)."""
    if (path := too_deep(value, levels)) is not None:
        where = ".".join([name, *path[:8]])
        raise InvalidArgument(f"{name} is nested more than {levels} levels deep (at {shown(where)})")
