"""langgraph.json's `graphs`: each name's compiled graph, or the factory that builds one per use."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from gateway.config.factories import GraphFactory
from gateway.config.loader import ConfigError, load_object

# The namespace the LangGraph Agent Server derives system assistant ids from.
ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


@dataclass(frozen=True)
class GraphSpec:
    graph_id: str
    # The compiled graph; None for a factory, which builds one per use (gateway.core.graphs).
    graph: Pregel | None
    factory: GraphFactory | None = None

    @property
    def assistant_id(self) -> str:
        return str(uuid.uuid5(ASSISTANT_NAMESPACE, self.graph_id))


def load_graph(graph_id: str, ref: str, base: Path) -> Pregel | GraphFactory:
    obj = load_object(
        ref, base, key=f"graphs.{graph_id}", namespace=f"_gateway_graphs.{graph_id}", want="a LangGraph graph"
    )
    if isinstance(obj, StateGraph):
        obj = obj.compile()
    elif callable(obj) and not isinstance(obj, Pregel):
        # A factory: called per run (and per read of the graph), not now.
        try:
            return GraphFactory.of(obj)
        except ValueError as exc:
            raise ConfigError(f"graphs.{graph_id}: {ref}: {exc}") from None
    if not isinstance(obj, Pregel):
        raise ConfigError(f"graphs.{graph_id}: {ref} is a {type(obj).__name__}, not a LangGraph graph")
    if obj.name == "LangGraph":
        # Unnamed graphs take their config name, as on the LangGraph Agent Server (events show it).
        obj = obj.copy(update={"name": graph_id})
    return obj
