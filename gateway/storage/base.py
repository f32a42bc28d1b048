"""The records the core keeps and the interface a storage backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from gateway.core.channel import Event


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class AssistantRecord:
    assistant_id: str
    graph_id: str
    name: str
    created_at: str
    updated_at: str
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "assistant_id": self.assistant_id,
            "graph_id": self.graph_id,
            "config": self.config,
            "context": self.context,
            "metadata": self.metadata,
            "name": self.name,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "version": self.version,
            "description": self.description,
        }


@dataclass
class ThreadRecord:
    thread_id: str
    created_at: str
    updated_at: str
    state_updated_at: str
    metadata: dict[str, Any]
    status: str = "idle"
    config: dict[str, Any] = field(default_factory=dict)
    # Graph data stays JSON text: written once when a run ends, passed through on reads.
    values: bytes = b"null"
    interrupts: bytes = b"{}"
    error: bytes = b"null"

    def to_json(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "state_updated_at": self.state_updated_at,
            "metadata": self.metadata,
            "status": self.status,
            "config": self.config,
            "values": orjson.Fragment(self.values),
            "error": orjson.Fragment(self.error),
            "interrupts": orjson.Fragment(self.interrupts),
        }


@dataclass
class RunRecord:
    run_id: str
    thread_id: str
    assistant_id: str
    created_at: str
    updated_at: str
    status: str
    metadata: dict[str, Any]
    multitask_strategy: str
    kwargs: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "assistant_id": self.assistant_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "status": self.status,
            "metadata": self.metadata,
            "multitask_strategy": self.multitask_strategy,
            "kwargs": self.kwargs,
        }


class Storage(Protocol):
    """What the run core needs from a backend. The sqlite one is the default; a
    Postgres one implements the same methods."""

    async def setup(self) -> None: ...

    async def close(self) -> None: ...

    async def put_assistant(self, assistant: AssistantRecord) -> AssistantRecord: ...

    async def get_assistant(self, assistant_id: str) -> AssistantRecord | None: ...

    async def search_assistants(
        self, *, graph_id: str | None, name: str | None, metadata: dict[str, Any] | None, limit: int, offset: int
    ) -> list[AssistantRecord]: ...

    async def create_thread(self, thread: ThreadRecord) -> bool: ...

    async def get_thread(self, thread_id: str) -> ThreadRecord | None: ...

    async def update_thread(self, thread_id: str, **fields: Any) -> None: ...

    async def delete_thread(self, thread_id: str) -> bool: ...

    async def search_threads(
        self, *, metadata: dict[str, Any] | None, status: str | None, limit: int, offset: int
    ) -> list[ThreadRecord]: ...

    async def count_threads(self, *, metadata: dict[str, Any] | None, status: str | None) -> int: ...

    async def create_run(self, run: RunRecord) -> None: ...

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def update_run_status(self, run_id: str, status: str) -> None: ...

    async def delete_run(self, run_id: str) -> None: ...

    async def list_runs(self, thread_id: str, *, status: str | None, limit: int, offset: int) -> list[RunRecord]: ...

    async def runs_with_status(self, statuses: Sequence[str]) -> list[RunRecord]: ...

    async def append_events(self, run_id: str, events: Sequence[Event]) -> None: ...

    async def read_events(self, run_id: str, after: int, limit: int) -> list[Event]: ...

    async def delete_events(self, run_id: str) -> None: ...

    async def prune_events(self, older_than: float) -> int: ...

    async def delete_run_checkpoints(self, thread_id: str, run_id: str) -> None: ...
