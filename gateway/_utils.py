"""Small helpers shared by the core and the edges."""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> str:
    """A time-ordered UUIDv7, as the LangGraph Agent Server gives runs and threads."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def is_uuid(value: str) -> bool:
    """A UUID in its canonical spelling: other spellings ("urn:uuid:...", braces, no dashes)
    would be stored as different ids for the same UUID."""
    try:
        return str(uuid.UUID(value)) == value.lower()
    except (ValueError, TypeError, AttributeError):
        return False


def run_base_ms(run_id: str) -> int:
    """The millisecond part of a run's event ids: its UUIDv7's timestamp."""
    return int(uuid.UUID(run_id).int >> 80)
