"""Loads a langgraph.json config: the graphs to serve, their dependencies and environment."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

# The namespace the LangGraph Agent Server derives system assistant ids from.
ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


class ConfigError(Exception):
    """The config file or one of the graphs it names cannot be loaded."""


@dataclass(frozen=True)
class GraphSpec:
    graph_id: str
    graph: Pregel

    @property
    def assistant_id(self) -> str:
        return str(uuid.uuid5(ASSISTANT_NAMESPACE, self.graph_id))


@dataclass
class Config:
    path: Path
    graphs: dict[str, GraphSpec] = field(default_factory=dict)


def load_config(path: str | os.PathLike[str]) -> Config:
    path = Path(path).resolve()
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("graphs"), dict) or not raw["graphs"]:
        raise ConfigError(f"{path}: 'graphs' must be an object mapping graph names to 'file.py:attribute'")
    base = path.parent
    _apply_env(raw.get("env"), base)
    for dep in raw.get("dependencies") or ["."]:
        dep_path = (base / dep).resolve()
        if dep_path.is_dir() and str(dep_path) not in sys.path:
            sys.path.insert(0, str(dep_path))
    config = Config(path=path)
    for graph_id, ref in raw["graphs"].items():
        if not isinstance(ref, str) or ":" not in ref:
            raise ConfigError(f"{path}: graphs.{graph_id} must be 'file.py:attribute' or 'module:attribute'")
        config.graphs[graph_id] = GraphSpec(graph_id, _load_graph(graph_id, ref, base))
    return config


def _apply_env(env: Any, base: Path) -> None:
    if isinstance(env, dict):
        for key, value in env.items():
            os.environ.setdefault(str(key), str(value))
    elif isinstance(env, str):
        env_file = base / env
        if not env_file.is_file():
            raise ConfigError(f"env file not found: {env_file}")
        for line in env_file.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                os.environ.setdefault(key.strip().removeprefix("export ").strip(), value.strip().strip("'\""))


def _load_graph(graph_id: str, ref: str, base: Path) -> Pregel:
    target, _, attr = ref.rpartition(":")
    try:
        if target.endswith(".py") or "/" in target:
            file = (base / target).resolve()
            module_name = f"_gateway_graphs.{graph_id}.{file.stem}"
            spec = importlib.util.spec_from_file_location(module_name, file)
            if spec is None or spec.loader is None:
                raise ConfigError(f"graphs.{graph_id}: cannot load {file}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f"graphs.{graph_id}: importing {target!r} failed: {type(e).__name__}: {e}") from e
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"graphs.{graph_id}: {target!r} has no attribute {attr!r}") from None
    if isinstance(obj, StateGraph):
        obj = obj.compile()
    elif callable(obj) and not isinstance(obj, Pregel):
        # A factory: called with no arguments, or with an empty config.
        params = inspect.signature(obj).parameters
        obj = obj({}) if params else obj()
        if isinstance(obj, StateGraph):
            obj = obj.compile()
    if not isinstance(obj, Pregel):
        raise ConfigError(f"graphs.{graph_id}: {ref} is a {type(obj).__name__}, not a LangGraph graph")
    if obj.name == "LangGraph":
        # Unnamed graphs take their config name, as on the LangGraph Agent Server (events show it).
        obj = obj.copy(update={"name": graph_id})
    return obj
