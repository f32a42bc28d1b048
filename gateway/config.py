"""Loads a langgraph.json config: the graphs to serve, their dependencies and environment, the
custom auth of `auth.path`, and the `http` section. No key is ignored silently: what the gateway
does not implement is listed in `Config.ignored` (named at start), and what would weaken security
if it were ignored stops the start with a ConfigError."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from starlette.applications import Starlette

from gateway.auth import AuthHandlers, load_auth
from gateway.factories import GraphFactory
from gateway.http.config import HttpConfig, HttpConfigError, load_app, parse_http
from gateway.storage.store import StoreConfig, StoreConfigError, parse_store

# The namespace the LangGraph Agent Server derives system assistant ids from.
ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


class ConfigError(Exception):
    """The config file or one of the graphs it names cannot be loaded."""


@dataclass(frozen=True)
class GraphSpec:
    graph_id: str
    # The compiled graph; None for a factory, which builds one per use (gateway.core.graphs).
    graph: Pregel | None
    factory: GraphFactory | None = None

    @property
    def assistant_id(self) -> str:
        return str(uuid.uuid5(ASSISTANT_NAMESPACE, self.graph_id))


# Keys `langgraph build` reads to build an image; serving does not use them.
BUILD_KEYS = (
    "python_version",
    "node_version",
    "api_version",
    "base_image",
    "image_distro",
    "pip_config_file",
    "pip_installer",
    "source",
    "dockerfile_lines",
    "keep_pkg_tools",
)
# Keys the gateway does not implement; ignoring them weakens nothing.
NOT_IMPLEMENTED = ("checkpointer", "webhooks", "ui", "ui_config", "priority")
_SERVED = ("$schema", "graphs", "dependencies", "env", "auth", "http", "store")


@dataclass
class Config:
    path: Path
    graphs: dict[str, GraphSpec] = field(default_factory=dict)
    # The Auth object of `auth.path`; None without one.
    auth: AuthHandlers | None = None
    http: HttpConfig = field(default_factory=HttpConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    # The user's app of `http.app`.
    http_app: Starlette | None = None
    # Keys given that the gateway does not use, each with why.
    ignored: list[str] = field(default_factory=list)


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
    for dep_path in _local_dependencies(path, raw.get("dependencies")):
        if str(dep_path) not in sys.path:
            sys.path.insert(0, str(dep_path))
    config = Config(path=path)
    for graph_id, ref in raw["graphs"].items():
        if not isinstance(ref, str) or ":" not in ref:
            raise ConfigError(f"{path}: graphs.{graph_id} must be 'file.py:attribute' or 'module:attribute'")
        loaded = _load_graph(graph_id, ref, base)
        if isinstance(loaded, GraphFactory):
            config.graphs[graph_id] = GraphSpec(graph_id, None, loaded)
        else:
            config.graphs[graph_id] = GraphSpec(graph_id, loaded)
    for key in raw:
        if key in BUILD_KEYS:
            config.ignored.append(f"{key} (build-time)")
        elif key in NOT_IMPLEMENTED:
            config.ignored.append(f"{key} (not implemented)")
        elif key == "encryption":
            raise ConfigError(
                f"{path}: 'encryption' is not implemented by the gateway: it would store data unencrypted; remove it "
                "to serve without encryption"
            )
        elif key not in _SERVED:
            config.ignored.append(f"{key} (unknown)")
    _load_auth(config, raw.get("auth"), base)
    try:
        config.store = parse_store(raw.get("store"), base)
    except StoreConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    config.ignored.extend(config.store.ignored)
    try:
        config.http = parse_http(raw.get("http"))
        if config.http.app:
            config.http_app = load_app(config.http.app, base)
    except HttpConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    config.ignored.extend(f"{key} (not implemented)" for key in config.http.ignored)
    return config


def _load_auth(config: Config, section: Any, base: Path) -> None:
    if section is None:
        return
    if not isinstance(section, dict):
        raise ConfigError(f"{config.path}: 'auth' must be an object with a 'path'")
    if not section.get("path"):
        # The Agent Server refuses to start so too: auth asked for, but no handler to run.
        raise ConfigError(f'{config.path}: auth.path is required (e.g. "./auth.py:auth")')
    for key in section:
        if key in ("openapi", "cache") or (key == "allow_langsmith_api_keys" and section[key]):
            config.ignored.append(f"auth.{key} (not implemented)")
        elif key not in ("path", "disable_studio_auth", "allow_langsmith_api_keys"):
            config.ignored.append(f"auth.{key} (unknown)")
    try:
        config.auth = AuthHandlers(load_auth(section["path"], base))
    except ValueError as exc:
        raise ConfigError(f"{config.path}: auth.path: {exc}") from None


def _local_dependencies(path: Path, section: Any) -> list[Path]:
    """The folders of `dependencies`, which go on the import path. As `langgraph build` reads
    them, an entry that starts with "." (or here, an absolute path) is a folder, which must
    exist: a mistyped one would otherwise surface as a graph that fails to import, far from
    its cause. Other entries are packages, which the environment provides (or folders beside
    the config, as the gateway has always taken them)."""
    section = section or ["."]
    if not isinstance(section, list) or not all(isinstance(dep, str) for dep in section):
        raise ConfigError(f"{path}: 'dependencies' must be a list of folders and package names")
    folders = []
    for dep in section:
        folder = (path.parent / dep).resolve()
        if folder.is_dir():
            folders.append(folder)
        elif dep.startswith((".", "/")):
            what = "is not a folder" if folder.exists() else "does not exist"
            raise ConfigError(f"{path}: dependencies: {dep!r} {what} ({folder})")
    return folders


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


def _load_graph(graph_id: str, ref: str, base: Path) -> Pregel | GraphFactory:
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
