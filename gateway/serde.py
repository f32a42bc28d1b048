"""JSON encoding of graph data, once per event, with orjson."""

from __future__ import annotations

import base64
import dataclasses
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(obj: Any) -> Any:
    # LangChain messages and other pydantic v2 models.
    model_dump = getattr(obj, "model_dump", None)
    if callable(model_dump) and not isinstance(obj, type):
        return model_dump()
    # pydantic v1 models.
    to_dict = getattr(obj, "dict", None)
    if callable(to_dict) and hasattr(obj, "__fields__") and not isinstance(obj, type):
        return to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, (uuid.UUID, Decimal)):
        return str(obj)
    if isinstance(obj, (datetime, date, time)):
        return obj.isoformat()
    if isinstance(obj, timedelta):
        return obj.total_seconds()
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (bytes, bytearray)):
        return base64.b64encode(obj).decode()
    if isinstance(obj, BaseException):
        return {"error": type(obj).__name__, "message": str(obj)}
    # NamedTuples (langgraph's Send, PregelTask) and objects with a _asdict.
    as_dict = getattr(obj, "_asdict", None)
    if callable(as_dict):
        return as_dict()
    to_json = getattr(obj, "to_json", None)
    if callable(to_json):
        return to_json()
    if hasattr(obj, "__slots__"):
        return {k: getattr(obj, k) for k in obj.__slots__ if hasattr(obj, k)}
    return repr(obj)


def dumps(obj: Any) -> bytes:
    """Encodes graph data as compact UTF-8 JSON; anything orjson cannot encode natively goes
    through the same rules the LangGraph Agent Server applies."""
    try:
        return orjson.dumps(obj, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        # Keys orjson refuses (e.g. tuples) or integers past 64 bits: fall back to a
        # pre-pass that turns them into JSON-able values.
        return orjson.dumps(_coerce(obj), default=_default, option=_OPTIONS)


def _coerce(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k if isinstance(k, (str, int, float, bool)) else str(k): _coerce(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_coerce(v) for v in obj]
    if isinstance(obj, int) and not -(2**63) <= obj < 2**64:
        return str(obj)
    return obj


loads: Callable[[bytes | str], Any] = orjson.loads
