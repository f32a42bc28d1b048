"""The system assistants: one per graph of the config, with the Agent Server's ids."""

from __future__ import annotations

import logging
import warnings
from typing import Any
from uuid import UUID

from langchain_core.runnables.utils import create_model
from pydantic import TypeAdapter

from gateway._utils import is_uuid
from gateway.config import GraphSpec
from gateway.core.access import Access, metadata_of
from gateway.core.graphs import Graphs
from gateway.errors import InvalidArgument, NotFound
from gateway.records import AccessFilter, AssistantFilter, AssistantRecord, now_iso
from gateway.storage import RecordStore

logger = logging.getLogger("gateway.assistants")

# Configurable keys the runtime sets itself: not part of an assistant's config schema.
_RUNTIME_CONFIGURABLE = ("__pregel_checkpointer", "__pregel_store", "checkpoint_id", "checkpoint_ns", "thread_id")


class Assistants:
    def __init__(
        self,
        storage: RecordStore,
        graphs: dict[str, GraphSpec],
        builder: Graphs,
        *,
        access: Access | None = None,
    ) -> None:
        self.storage = storage
        self.graphs = graphs
        self._builder = builder
        self._access = access or Access(None, storage)
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
        """By UUID or by graph name, if the caller may read it."""
        known = self.graphs[assistant_id].assistant_id if assistant_id in self.graphs else assistant_id
        access = None
        if is_uuid(known):
            access = await self._access.check("assistants", "read", {"assistant_id": UUID(known)})
        record = await self._lookup(assistant_id)
        if access is not None and await self.storage.get_assistant(record.assistant_id, access=access) is None:
            raise NotFound(f"Assistant {assistant_id} not found.")
        return record

    async def _lookup(self, assistant_id: str) -> AssistantRecord:
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
        """The assistant a run is created with: run creation decides who may use it."""
        record = await self._lookup(assistant_id)
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
        value = {"graph_id": graph_id, "metadata": dict(metadata or {}), "limit": limit, "offset": offset}
        access = await self._access.check("assistants", "search", value)
        where = self._filter(graph_id, name, metadata_of(value), access)
        return await self.storage.search_assistants(where, limit=limit, offset=offset)

    async def count(
        self, *, graph_id: str | None = None, name: str | None = None, metadata: dict[str, Any] | None = None
    ) -> int:
        value = {"graph_id": graph_id, "metadata": dict(metadata or {}), "limit": 0, "offset": 0}
        access = await self._access.check("assistants", "search", value)
        return await self.storage.count_assistants(self._filter(graph_id, name, metadata_of(value), access))

    def _filter(
        self, graph_id: str | None, name: str | None, metadata: dict[str, Any] | None, access: AccessFilter | None
    ) -> AssistantFilter:
        if graph_id is not None and graph_id not in self.graphs:
            raise NotFound(f"Graph '{graph_id}' not found. Expected one of: {sorted(self.graphs)}")
        return AssistantFilter(graph_id=graph_id, name=name, metadata=metadata or None, access=access)

    async def graph_json(self, assistant_id: str, *, xray: bool | int = False) -> dict[str, Any]:
        """The graph's nodes and edges, as LangGraph draws it; `xray` expands subgraphs."""
        record = await self.get(assistant_id)
        async with self._builder.build(
            self._spec(record), record.config, "assistants.read", checkpointer=None
        ) as built:
            try:
                drawable = await built.aget_graph(xray=xray)
            except NotImplementedError:
                raise InvalidArgument("The graph does not support visualization") from None
        graph = drawable.to_json()
        for node in graph.get("nodes", ()):
            data = node.get("data")
            if isinstance(data, dict):
                data.pop("id", None)
        return graph

    async def schemas(self, assistant_id: str) -> dict[str, Any]:
        """JSON schemas of the graph's input, output, state, config and context; null where
        LangGraph cannot derive one."""
        record = await self.get(assistant_id)
        spec = self._spec(record)
        async with self._builder.build(spec, record.config, "assistants.read", checkpointer=None) as graph:
            return {
                "graph_id": spec.graph_id,
                "input_schema": _schema(graph.get_input_jsonschema, "input", spec.graph_id),
                "output_schema": _schema(graph.get_output_jsonschema, "output", spec.graph_id),
                "state_schema": _schema(lambda: _state_schema(graph, spec.graph_id), "state", spec.graph_id),
                "config_schema": _schema(lambda: _config_schema(graph), "config", spec.graph_id),
                "context_schema": _schema(graph.get_context_jsonschema, "context", spec.graph_id),
            }


def _schema(make: Any, what: str, graph_id: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return make()
    except Exception as exc:
        logger.warning("no %s schema for graph %s: %s: %s", what, graph_id, type(exc).__name__, exc)
        return None


def _state_schema(graph: Any, graph_id: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key in graph.stream_channels_list:
        update_type = graph.channels[key].UpdateType
        try:
            create_model(key, __root__=(update_type, None)).model_json_schema()
            fields[key] = (update_type, None)
        except Exception:
            fields[key] = (Any, None)
    # The Agent Server names a graph left with LangGraph's default name after its graph id.
    base = graph_id if graph.name == "LangGraph" else graph.name
    name = f"{base}State" if base[:1].isupper() else f"{base}_state"
    return create_model(name, **fields).model_json_schema()


def _config_schema(graph: Any) -> dict[str, Any]:
    model = graph.config_schema()
    configurable = getattr(model, "model_fields", {}).get("configurable")
    if configurable is None:
        return {}
    schema: dict[str, Any] = TypeAdapter(configurable.annotation).json_schema()
    for key in _RUNTIME_CONFIGURABLE:
        schema.get("properties", {}).pop(key, None)
    return schema
