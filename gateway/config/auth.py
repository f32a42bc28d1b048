"""langgraph.json's `auth` section: the `Auth` object of `auth.path`, which the auth handlers
(gateway.auth) run on every request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langgraph_sdk import Auth

from gateway.config.loader import ConfigError, kind, load_object

WANT = "a langgraph_sdk Auth"


def load_auth(ref: Any, base: Path) -> Auth:
    """The Auth object named by `auth.path` ("./auth.py:auth" or "module:auth"), imported as
    the graphs are; ConfigError says what is wrong with it."""
    found = load_object(ref, base, key="auth.path", namespace="_gateway_auth", want=WANT)
    if not isinstance(found, Auth):
        raise ConfigError(f"auth.path: {ref!r} is {kind(found)}, not {WANT}")
    if found._authenticate_handler is None:
        raise ConfigError(f"auth.path: the Auth object {ref!r} has no @auth.authenticate handler")
    return found


def auth_section(section: Any, where: Path, ignored: list[str]) -> Any:
    """The `auth.path` of the section (None without a section), after checking the section;
    keys the gateway does not use go to `ignored`."""
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: 'auth' must be an object with a 'path'")
    if not section.get("path"):
        # The Agent Server refuses to start so too: auth asked for, but no handler to run.
        raise ConfigError(f'{where}: auth.path is required (e.g. "./auth.py:auth")')
    for key in section:
        if key in ("openapi", "cache") or (key == "allow_langsmith_api_keys" and section[key]):
            ignored.append(f"auth.{key} (not implemented)")
        elif key not in ("path", "disable_studio_auth", "allow_langsmith_api_keys"):
            ignored.append(f"auth.{key} (unknown)")
    return section["path"]
