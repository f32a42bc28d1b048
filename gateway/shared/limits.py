"""How much a request may ask of storage. A search matches each of its filter's keys against
every record it scans, and the sqlite backend runs its statements on the event loop's thread:
the number of keys and the size of what they are matched against bound how long one search can
hold the loop. Refused with InvalidArgument (HTTP 422, gRPC INVALID_ARGUMENT), naming the
field and the limit, by the core, so that every edge refuses alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.shared.errors import InvalidArgument
from gateway.shared.serde import json_text

# Keys of one filter object (a search's `metadata`, `values` or store `filter`, a history's
# `metadata`): sqlite refuses an expression past ~1,000 terms, and each key is a test per record.
MAX_FILTER_KEYS = 100
# JSON bytes of one filter object, which no record of MAX_METADATA_BYTES could hold more of.
MAX_FILTER_BYTES = 64 * 1024
# JSON bytes of the metadata of a thread, assistant, cron or run, as it is stored.
MAX_METADATA_BYTES = 64 * 1024
# Seconds a search or count may run on the sqlite backend (which runs it on the event loop's
# thread) before it is stopped with TimedOut; the limits above keep a search well inside it
# unless the records it scans are many.
MAX_SEARCH_SECONDS = 2.0


def check_filter(field: str, value: Mapping[str, Any] | None) -> None:
    if not value:
        return
    if len(value) > MAX_FILTER_KEYS:
        raise InvalidArgument(f"{field} has {len(value)} keys: a filter may have at most {MAX_FILTER_KEYS}")
    size = _size(value)
    if size > MAX_FILTER_BYTES:
        raise InvalidArgument(f"{field} is {size} bytes of JSON: a filter may be at most {MAX_FILTER_BYTES}")


def check_metadata(field: str, value: Mapping[str, Any] | None) -> None:
    if not value:
        return
    size = _size(value)
    if size > MAX_METADATA_BYTES:
        raise InvalidArgument(f"{field} is {size} bytes of JSON: metadata may be at most {MAX_METADATA_BYTES}")


def _size(value: Mapping[str, Any]) -> int:
    # Measured as storage writes it (json_text), so what passes here fits there.
    try:
        return len(json_text(value).encode())
    except TypeError:
        # Not plain JSON (from a graph, not a request): storage decides what to make of it.
        return 0
