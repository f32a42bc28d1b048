"""JSON encoding: what it makes of non-JSON values, and how much memory a held payload costs."""

from __future__ import annotations

import tracemalloc

from gateway.shared.serde import dumps, loads


def test_unencodable_text_becomes_valid_utf8() -> None:
    data = dumps({"lone": "a\ud800b", "nul": "x\x00y"})
    data.decode("utf-8")
    assert loads(data) == {"lone": "a?b", "nul": "x\ufffdy"}


def test_integers_past_64_bits_become_floats() -> None:
    # Postgres's jsonb gives a stored 1e300 back as a 301-digit integer; orjson takes 64 bits.
    data = dumps({"big": 10**300, "edge": [2**64 - 1, -(2**63)], "flag": True})
    assert loads(data) == {"big": 1e300, "edge": [2**64 - 1, -(2**63)], "flag": True}


def _held_bytes(values: list[object]) -> tuple[float, int]:
    """Memory held per encoded value, and the length of one."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [dumps(v) for v in values]
        return (tracemalloc.get_traced_memory()[0] - before) / len(held), len(held[0])
    finally:
        tracemalloc.stop()


def test_a_held_payload_costs_its_length_not_the_encoders_buffer() -> None:
    # Runs hold their events for replay. orjson's working buffer is 4 KiB for the smallest
    # payload and several times the length of a large one: neither may stay behind.
    per_small, small = _held_bytes([{"seq": i, "t": 1.5} for i in range(10_000)])
    assert per_small < 200, f"{per_small:.0f} bytes held per {small}-byte payload"
    per_large, large = _held_bytes([{"blob": "x" * 300_000, "i": i} for i in range(20)])
    assert per_large < 1.1 * large, f"{per_large:.0f} bytes held per {large}-byte payload"
