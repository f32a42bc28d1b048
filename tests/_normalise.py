"""Makes two streams of the same run comparable: ids and timestamps become placeholders
numbered by first appearance, so the structure must still match exactly."""

from __future__ import annotations

import re
from typing import Any

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{32}\b|lc_run--[0-9a-f-]{36}")
_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?")
_STEP_TAG = re.compile(r"^graph:step:\d+$")


class Normaliser:
    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def _id(self, m: re.Match[str]) -> str:
        return self.ids.setdefault(m.group(0), f"<id{len(self.ids) + 1}>")

    def text(self, s: str) -> str:
        return _TS.sub("<ts>", _ID.sub(self._id, s))

    def __call__(self, v: Any) -> Any:
        if isinstance(v, dict):
            # Sorted, so that ids are numbered the same whatever order the keys came in.
            return {self.text(k): self(v[k]) for k in sorted(v)}
        if isinstance(v, (list, tuple)):
            return [self(x) for x in v]
        if isinstance(v, str):
            return "graph:step:<n>" if _STEP_TAG.match(v) else self.text(v)
        return v
