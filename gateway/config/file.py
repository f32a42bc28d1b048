"""Loads a langgraph.json config: the graphs to serve, their dependencies and environment, the
custom auth of `auth.path`, and the `http` section. No key is ignored silently: what the gateway
does not implement is listed in `Config.ignored` (named at start), and what would weaken security
if it were ignored stops the start with a ConfigError."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.auth import AuthHandlers
from gateway.config.auth import auth_section, load_auth
from gateway.config.env import apply_env, local_dependencies
from gateway.config.factories import GraphFactory
from gateway.config.graphs import GraphSpec, load_graph
from gateway.config.http import HttpConfig, load_app, parse_http
from gateway.config.loader import ConfigError
from gateway.config.store import StoreConfig, parse_store

if TYPE_CHECKING:
    from starlette.applications import Starlette

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
    apply_env(raw.get("env"), base)
    for dep_path in local_dependencies(path, raw.get("dependencies")):
        if str(dep_path) not in sys.path:
            sys.path.insert(0, str(dep_path))
    config = Config(path=path)
    for graph_id, ref in raw["graphs"].items():
        if not isinstance(ref, str) or ":" not in ref:
            raise ConfigError(f"{path}: graphs.{graph_id} must be 'file.py:attribute' or 'module:attribute'")
        loaded = load_graph(graph_id, ref, base)
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
    auth_path = auth_section(raw.get("auth"), path, config.ignored)
    if auth_path is not None:
        try:
            config.auth = AuthHandlers(load_auth(auth_path, base))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    try:
        config.store = parse_store(raw.get("store"), base)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    config.ignored.extend(config.store.ignored)
    try:
        config.http = parse_http(raw.get("http"))
        if config.http.app:
            config.http_app = load_app(config.http.app, base)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    config.ignored.extend(f"{key} (not implemented)" for key in config.http.ignored)
    return config
