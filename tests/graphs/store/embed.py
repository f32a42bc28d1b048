"""A deterministic embeddings function for the store's semantic index (langgraph.json's
`store.index.embed`, "./embed.py:embed"): each word of a text counts in one of `DIMS` buckets
(by its crc32, the same in every process), so texts that share words are near."""

from __future__ import annotations

import math
import re
import zlib

DIMS = 16


def _vector(text: str) -> list[float]:
    vector = [0.0] * DIMS
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[zlib.crc32(word.encode()) % DIMS] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def embed(texts: list[str]) -> list[list[float]]:
    return [_vector(text) for text in texts]
