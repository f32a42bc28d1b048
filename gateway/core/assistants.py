"""The system assistants: one per graph of the config, with the Agent Server's ids."""

from __future__ import annotations

from typing import Any

from gateway._utils import is_uuid
from gateway.config import GraphSpec
from gateway.errors import InvalidArgument, NotFound
from gateway.storage import AssistantRecord, Storage, now_iso


class Assistants:
    def __init__(self, storage: Storage, graphs: dict[str, GraphSpec]) -> None:
        self.storage = storage
        self.graphs = graphs
        self._by_id: dict[str, AssistantRecord] = {}

    async def setup(self) -> None:
        for spec in self.graphs.values():
            now = now_iso()
            record = AssistantRecord(
                assistant_id=spec.assistant_id,
                graph_id=spec.graph_id,
                name=spec.graph_id,
                created_at=now,
                updated_at=now,
                metadata={"created_by": "system"},
            )
            self._by_id[spec.assistant_id] = await self.storage.put_assistant(record)

    def _spec(self, record: AssistantRecord) -> GraphSpec:
        return self.graphs[record.graph_id]

    async def get(self, assistant_id: str) -> AssistantRecord:
        """By UUID or by graph name."""
        if assistant_id in self.graphs:
            return self._by_id[self.graphs[assistant_id].assistant_id]
        if not is_uuid(assistant_id):
            raise InvalidArgument(
                f"Invalid assistant: {assistant_id!r}. Must be either:\n- A valid assistant UUID, or\n"
                f"- One of the registered graphs: {', '.join(self.graphs)}"
            )
        record = self._by_id.get(assistant_id) or await self.storage.get_assistant(assistant_id)
        if record is None or record.graph_id not in self.graphs:
            raise NotFound(f"Assistant {assistant_id} not found.")
        return record

    async def resolve(self, assistant_id: str) -> tuple[AssistantRecord, GraphSpec]:
        record = await self.get(assistant_id)
        return record, self._spec(record)

    def get_config(self, assistant_id: str) -> dict[str, Any]:
        record = self._by_id.get(assistant_id)
        return dict(record.config) if record is not None else {}

    async def search(
        self,
        *,
        graph_id: str | None = None,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[AssistantRecord]:
        if graph_id is not None and graph_id not in self.graphs:
            raise NotFound(f"Graph '{graph_id}' not found. Expected one of: {sorted(self.graphs)}")
        return await self.storage.search_assistants(
            graph_id=graph_id, name=name, metadata=metadata, limit=limit, offset=offset
        )
