"""Reading the bridge's event streams byte for byte, as the wire carries them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

ID = re.compile(r"^(\d+)-(\d+)$")
HEARTBEAT = b": heartbeat\r\n\r\n"


@dataclass
class Event:
    event: str
    data: Any
    id: str | None
    raw: bytes

    @property
    def seq(self) -> tuple[int, int]:
        match = ID.match(self.id or "")
        assert match, f"event id {self.id!r} is not <ms>-<seq>"
        return int(match[1]), int(match[2])


def parse_block(block: bytes) -> Event | None:
    """One CRLF-framed block: `event:`, one `data:` line, optionally `id:`, in that order."""
    if block == b": heartbeat":
        return None
    lines = block.split(b"\r\n")
    assert all(b"\n" not in line and b"\r" not in line for line in lines), block
    assert lines[0].startswith(b"event: ") and lines[1].startswith(b"data: "), block
    assert len(lines) in (2, 3), block
    event_id = None
    if len(lines) == 3:
        assert lines[2].startswith(b"id: "), block
        event_id = lines[2][4:].decode()
    return Event(lines[0][7:].decode(), orjson.loads(lines[1][6:]), event_id, block)


def parse(raw: bytes) -> list[Event]:
    assert raw == b"" or raw.endswith(b"\r\n\r\n"), raw[-200:]
    events = []
    for block in raw.split(b"\r\n\r\n")[:-1]:
        event = parse_block(block)
        if event is not None:
            events.append(event)
    return events


def iter_events(response: httpx.Response) -> Iterator[Event]:
    """Events as they arrive, without waiting for the end of the stream."""
    buffer = b""
    for chunk in response.iter_raw():
        buffer += chunk
        *blocks, buffer = buffer.split(b"\r\n\r\n")
        for block in blocks:
            event = parse_block(block)
            if event is not None:
                yield event


async def aiter_events(response: httpx.Response) -> AsyncIterator[Event]:
    buffer = b""
    async for chunk in response.aiter_raw():
        buffer += chunk
        *blocks, buffer = buffer.split(b"\r\n\r\n")
        for block in blocks:
            event = parse_block(block)
            if event is not None:
                yield event


def assert_ids_increase(events: list[Event]) -> None:
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), [e.id for e in events]
