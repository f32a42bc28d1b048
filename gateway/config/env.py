"""langgraph.json's `env` (variables, or a .env file) and `dependencies` (the folders that go on
the import path before the graphs are loaded)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gateway.config.loader import ConfigError


def local_dependencies(path: Path, section: Any) -> list[Path]:
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


def apply_env(env: Any, base: Path) -> None:
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
