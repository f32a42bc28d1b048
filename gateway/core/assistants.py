"""Assistants: one system assistant per graph of the config, with the Agent Server's ids, and
those users create, each a graph with its own config, context and metadata, in versions (an
update is the next version; any version can be made the latest again). Runs take the config
and context of the version that is the latest when they are created."""

from __future__ import annotations

import logging
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from langchain_core.runnables.utils import create_model
from pydantic import TypeAdapter

from gateway.config.graphs import GraphSpec
from gateway.core.access import Access, metadata_of
from gateway.core.graphs import Graphs
from gateway.shared.errors import SHOWN_CHARS, AlreadyExists, BadRequest, InvalidArgument, NotFound, shown
from gateway.shared.limits import check_filter, check_metadata
from gateway.shared.records import (
    ASSISTANT_SORT_KEYS,
    AccessFilter,
    AssistantChange,
    AssistantFilter,
    AssistantRecord,
    now_iso,
    synced_config,
)
from gateway.shared.util import is_uuid
from gateway.storage import RecordStore

logger = logging.getLogger("gateway.assistants")

# Assistants whose last read a process keeps for the runs it creates.
_RECENT = 1024
# Configurable keys the runtime sets itself: not part of an assistant's config schema.
_RUNTIME_CONFIGURABLE = ("__pregel_checkpointer", "__pregel_store", "checkpoint_id", "checkpoint_ns", "thread_id")
_BOTH = (
    "Cannot specify both configurable and context. Prefer setting context alone. Context was introduced in "
    "LangGraph 0.6.0 and is the long term planned replacement for configurable."
)

# What deleting an assistant does to its threads and runs (gateway.core.threads): called with
# the assistant's id and whether its threads go too.
Cascade = Callable[[str, bool], Awaitable[None]]


def _system(spec: GraphSpec) -> AssistantRecord:
    now = now_iso()
    return AssistantRecord(
        assistant_id=spec.assistant_id,
        graph_id=spec.graph_id,
        name=spec.graph_id,
        created_at=now,
        updated_at=now,
        metadata={"created_by": "system"},
    )


def check_assistant_id(assistant_id: str) -> str:
    if not is_uuid(assistant_id):
        raise InvalidArgument(f"assistant_id {shown(assistant_id)} is not a UUID", field="assistant_id")
    return assistant_id


def _check_config(config: dict[str, Any] | None, context: dict[str, Any] | None) -> None:
    configurable = (config or {}).get("configurable")
    if configurable is not None and not isinstance(configurable, dict):
        raise InvalidArgument("config.configurable must be an object")
    if configurable and context:
        raise BadRequest(_BOTH)


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
        self._system = {spec.assistant_id: spec for spec in graphs.values()}
        self.cascade: Cascade | None = None
        # The assistants runs were last created with, as read for them (most recent last).
        self._recent: OrderedDict[str, AssistantRecord] = OrderedDict()

    async def setup(self) -> None:
        for spec in self.graphs.values():
            await self.storage.put_assistant(_system(spec))

    def _spec(self, record: AssistantRecord) -> GraphSpec:
        return self.graphs[record.graph_id]

    def _check_graph(self, graph_id: str) -> None:
        if graph_id not in self.graphs:
            raise NotFound(
                f"Graph '{graph_id}' not found. Expected one of: {sorted(self.graphs)}", resource="graph", id=graph_id
            )

    async def get(self, assistant_id: str) -> AssistantRecord:
        """By UUID or by graph name, if the caller may read it."""
        known = self._known(assistant_id)
        access = None
        if is_uuid(known):
            access = await self._access.check("assistants", "read", {"assistant_id": UUID(known)})
        record = await self._lookup(assistant_id)
        if access is not None and await self.storage.get_assistant(record.assistant_id, access=access) is None:
            raise NotFound(f"Assistant {assistant_id} not found.", resource="assistant", id=assistant_id)
        return record

    def _known(self, assistant_id: str) -> str:
        """The assistant's id, given its id or its graph's name (that graph's system assistant)."""
        spec = self.graphs.get(assistant_id)
        return spec.assistant_id if spec is not None else assistant_id

    async def _lookup(self, assistant_id: str) -> AssistantRecord:
        if assistant_id not in self.graphs and not is_uuid(assistant_id):
            unknown = NotFound(
                f"Invalid assistant: {shown(assistant_id)}. Must be either:\n- A valid assistant UUID, or\n"
                f"- One of the registered graphs: {', '.join(self.graphs)}",
                resource="assistant",
                id=assistant_id[:SHOWN_CHARS],
            )
            # Not found as an id nor as a graph's name; the Agent Server answers HTTP 422 for it.
            unknown.http_status = 422
            raise unknown
        assistant_id = self._known(assistant_id)
        # Read each time: any process may have updated it.
        record = await self.storage.get_assistant(assistant_id)
        if record is None and assistant_id in self._system:
            # A graph's system assistant is the config's: deleted, it is back as version 1.
            record = await self.storage.put_assistant(_system(self._system[assistant_id]))
        if record is None or record.graph_id not in self.graphs:
            raise NotFound(f"Assistant {assistant_id} not found.", resource="assistant", id=assistant_id)
        return record

    async def resolve(self, assistant_id: str, *, recent: bool = False) -> tuple[AssistantRecord, GraphSpec]:
        """The assistant a run is created with: run creation decides who may use it. `recent`:
        as this process last read it, which the run's admission then checks is still so."""
        record = self._recent.get(self._known(assistant_id)) if recent else None
        if record is None:
            record = await self._lookup(assistant_id)
            self._recent[record.assistant_id] = record
        self._recent.move_to_end(record.assistant_id)
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        return record, self._spec(record)

    def forget(self, assistant_id: str) -> None:
        """Drops what this process last read of the assistant."""
        self._recent.pop(assistant_id, None)

    # Creating and changing assistants

    async def create(
        self,
        *,
        graph_id: str,
        assistant_id: str | None = None,
        config: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        if_exists: str = "raise",
        name: str | None = None,
        description: str | None = None,
    ) -> AssistantRecord:
        if if_exists not in ("raise", "do_nothing"):
            raise InvalidArgument(f"if_exists {shown(if_exists)} is not one of: raise, do_nothing")
        assistant_id = check_assistant_id(assistant_id) if assistant_id else str(uuid.uuid4())
        self._check_graph(graph_id)
        _check_config(config, context)
        check_metadata("metadata", metadata)
        value: dict[str, Any] = {
            "assistant_id": UUID(assistant_id),
            "graph_id": graph_id,
            "config": dict(config or {}),
            "context": context,
            "metadata": dict(metadata or {}),
            "name": name or "Untitled",
        }
        access = await self._access.check("assistants", "create", value)
        synced, synced_context = synced_config(dict(config or {}), context)
        now = now_iso()
        record = AssistantRecord(
            assistant_id=assistant_id,
            graph_id=graph_id,
            name=name or "Untitled",
            created_at=now,
            updated_at=now,
            config=synced,
            context=synced_context,
            metadata=metadata_of(value),
            description=description,
        )
        if await self.storage.create_assistant(record):
            self.forget(assistant_id)
            return record
        # Another caller's assistant exists too, as far as this one can tell: not revealed as such.
        existing = await self.storage.get_assistant(assistant_id, access=access)
        if existing is not None and if_exists == "do_nothing":
            return existing
        raise AlreadyExists(f"Assistant {assistant_id} already exists")

    async def update(
        self,
        assistant_id: str,
        *,
        graph_id: str | None = None,
        config: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        description: str | None = None,
    ) -> AssistantRecord:
        """Makes the assistant's next version: `config` and `context` replace the latest
        version's, `metadata` is merged into it."""
        check_assistant_id(assistant_id)
        check_metadata("metadata", metadata)
        value = {
            "assistant_id": UUID(assistant_id),
            "graph_id": graph_id,
            "config": dict(config or {}),
            "context": context,
            "metadata": dict(metadata or {}),
            "name": name,
        }
        access = await self._access.check("assistants", "update", value)
        _check_config(config, context)
        if graph_id is not None:
            self._check_graph(graph_id)
        if metadata:
            current = await self.storage.get_assistant(assistant_id, access=access)
            if current is not None:
                # What the assistant would hold, not only what this request adds to it.
                check_metadata("metadata", {**current.metadata, **metadata_of(value)})
        change = AssistantChange(
            graph_id=graph_id,
            config=config,
            context=context,
            metadata=metadata_of(value) if metadata is not None else None,
            name=name,
            description=description,
        )
        updated = await self.storage.update_assistant(assistant_id, change, access=access)
        self.forget(assistant_id)
        if updated is None:
            raise NotFound(f"Assistant {assistant_id} not found", resource="assistant", id=assistant_id)
        return updated

    async def set_latest(self, assistant_id: str, version: int) -> AssistantRecord:
        check_assistant_id(assistant_id)
        access = await self._access.check(
            "assistants", "update", {"assistant_id": UUID(assistant_id), "version": version}
        )
        record = await self.storage.set_assistant_version(assistant_id, version, access=access)
        self.forget(assistant_id)
        if record is None:
            raise NotFound(f"Assistant {assistant_id} not found", resource="assistant", id=assistant_id)
        return record

    async def versions(
        self, assistant_id: str, *, metadata: dict[str, Any] | None = None, limit: int = 10, offset: int = 0
    ) -> list[AssistantRecord]:
        """The assistant's versions, newest first."""
        check_assistant_id(assistant_id)
        check_filter("metadata", metadata)
        access = await self._access.check("assistants", "read", {"assistant_id": UUID(assistant_id)})
        found = await self.storage.list_assistant_versions(
            assistant_id, metadata=metadata or None, limit=limit, offset=offset, access=access
        )
        if not found:
            raise NotFound(f"Assistant {assistant_id} not found", resource="assistant", id=assistant_id)
        return found

    async def delete(self, assistant_id: str, *, delete_threads: bool = False) -> None:
        """Deletes the assistant, its versions and crons; its unfinished runs are cancelled and,
        with `delete_threads`, the threads it ran on (metadata.assistant_id) deleted."""
        check_assistant_id(assistant_id)
        access = await self._access.check("assistants", "delete", {"assistant_id": UUID(assistant_id)})
        if await self.storage.get_assistant(assistant_id, access=access) is None:
            raise NotFound(f"Assistant with ID {assistant_id} not found", resource="assistant", id=assistant_id)
        if self.cascade is not None:
            await self.cascade(assistant_id, delete_threads)
        deleted = await self.storage.delete_assistant(assistant_id, access=access)
        self.forget(assistant_id)
        if not deleted:
            raise NotFound(f"Assistant with ID {assistant_id} not found", resource="assistant", id=assistant_id)

    # Finding assistants

    async def search(
        self,
        *,
        graph_id: str | None = None,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> list[AssistantRecord]:
        if sort_by is not None and sort_by not in ASSISTANT_SORT_KEYS:
            raise InvalidArgument(f"sort_by {shown(sort_by)} is not one of: {', '.join(ASSISTANT_SORT_KEYS)}")
        if sort_order is not None and sort_order not in ("asc", "desc"):
            raise InvalidArgument(f"sort_order {shown(sort_order)} is not one of: asc, desc")
        check_filter("metadata", metadata)
        value = {"graph_id": graph_id, "metadata": dict(metadata or {}), "limit": limit, "offset": offset}
        access = await self._access.check("assistants", "search", value)
        where = self._filter(graph_id, name, metadata_of(value), access)
        return await self.storage.search_assistants(
            where, limit=limit, offset=offset, sort_by=sort_by or "created_at", descending=sort_order != "asc"
        )

    async def count(
        self, *, graph_id: str | None = None, name: str | None = None, metadata: dict[str, Any] | None = None
    ) -> int:
        check_filter("metadata", metadata)
        value = {"graph_id": graph_id, "metadata": dict(metadata or {}), "limit": 0, "offset": 0}
        access = await self._access.check("assistants", "search", value)
        return await self.storage.count_assistants(self._filter(graph_id, name, metadata_of(value), access))

    def _filter(
        self, graph_id: str | None, name: str | None, metadata: dict[str, Any] | None, access: AccessFilter | None
    ) -> AssistantFilter:
        if graph_id is not None:
            self._check_graph(graph_id)
        return AssistantFilter(graph_id=graph_id, name=name, metadata=metadata or None, access=access)

    # The graph behind an assistant

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
            # The Agent Server names a graph left with LangGraph's default name after its graph id.
            base = spec.graph_id if graph.name == "LangGraph" else graph.name
            state_name = f"{base}State" if base[:1].isupper() else f"{base}_state"
            return {"graph_id": spec.graph_id, **_graph_schemas(graph, state_name, spec.graph_id)}

    async def subgraphs(
        self, assistant_id: str, *, namespace: str | None = None, recurse: bool = False
    ) -> dict[str, Any]:
        """The schemas of the graph's subgraphs by namespace (under `namespace` only, and with
        `recurse` those of their subgraphs too)."""
        record = await self.get(assistant_id)
        spec = self._spec(record)
        async with self._builder.build(spec, record.config, "assistants.read", checkpointer=None) as graph:
            try:
                return {
                    ns: _graph_schemas(subgraph, subgraph.get_name("State"), f"{spec.graph_id}|{ns}")
                    async for ns, subgraph in graph.aget_subgraphs(namespace=namespace, recurse=recurse)
                }
            except NotImplementedError:
                raise InvalidArgument("The graph does not support visualization") from None


def _graph_schemas(graph: Any, state_name: str, where: str) -> dict[str, Any]:
    return {
        "input_schema": _schema(graph.get_input_jsonschema, "input", where),
        "output_schema": _schema(graph.get_output_jsonschema, "output", where),
        "state_schema": _schema(lambda: _state_schema(graph, state_name), "state", where),
        "config_schema": _schema(lambda: _config_schema(graph), "config", where),
        "context_schema": _schema(graph.get_context_jsonschema, "context", where),
    }


def _schema(make: Any, what: str, graph_id: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return make()
    except Exception as exc:
        logger.warning("no %s schema for graph %s: %s: %s", what, graph_id, type(exc).__name__, exc)
        return None


def _state_schema(graph: Any, name: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key in graph.stream_channels_list:
        update_type = graph.channels[key].UpdateType
        try:
            create_model(key, __root__=(update_type, None)).model_json_schema()
            fields[key] = (update_type, None)
        except Exception:
            fields[key] = (Any, None)
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
