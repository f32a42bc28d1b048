"""A case is one streamed run, sent as the same request to both servers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CASES = Path(__file__).with_name("cases.json")


@dataclass(frozen=True)
class Case:
    name: str
    # The body of `POST /threads/{id}/runs/stream`, or of `POST /runs/stream` without a thread.
    body: dict[str, Any]
    thread: bool = False
    # Bodies of runs streamed to completion on the same thread first, to build up its state.
    before: tuple[dict[str, Any], ...] = ()


def load_cases(path: Path = CASES, only: str | None = None) -> list[Case]:
    """The cases of `path`, or those whose name contains `only`."""
    cases = [
        Case(raw["name"], raw["body"], bool(raw.get("thread")), tuple(raw.get("before", ())))
        for raw in json.loads(path.read_text())
    ]
    names = [case.name for case in cases]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise ValueError(f"{path}: case names must be unique: {sorted(duplicates)}")
    return [case for case in cases if only is None or only in case.name]
