"""langgraph.json's `http` section, as the LangGraph Agent Server applies it: CORS, the switches
that turn route groups off, and a user's own Starlette or FastAPI app served beside the API.

Imports no LangGraph: the HTTP bridge reads the same section."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gateway.config.loader import ConfigError, kind, load_object

if TYPE_CHECKING:
    from starlette.applications import Starlette

MiddlewareOrder = Literal["middleware_first", "auth_first"]

# Keys of `http` the gateway applies. `disable_ui`, `disable_mcp`, `disable_a2a` and
# `disable_webhooks` turn off what the gateway does not serve anyway.
_SWITCHES = (
    "disable_assistants",
    "disable_threads",
    "disable_runs",
    "disable_meta",
    "disable_store",
    "disable_ui",
    "disable_mcp",
    "disable_a2a",
    "disable_webhooks",
    "enable_custom_route_auth",
)
# Keys the gateway does not implement; ignoring them weakens nothing, and start says so.
NOT_IMPLEMENTED = ("mount_prefix", "configurable_headers", "logging_headers")
_CORS_LISTS = ("allow_origins", "allow_methods", "allow_headers", "expose_headers")


class HttpConfigError(ConfigError):
    """The `http` section is malformed; the message names the key."""


@dataclass(frozen=True)
class Cors:
    """`http.cors`, passed to Starlette's CORSMiddleware as the Agent Server passes it: what is
    not given keeps Starlette's default (no origin, GET only, no extra headers, max_age 600)."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ("GET",)
    allow_headers: tuple[str, ...] = ()
    allow_credentials: bool = False
    allow_origin_regex: str | None = None
    expose_headers: tuple[str, ...] = ()
    max_age: int = 600


@dataclass(frozen=True)
class HttpConfig:
    cors: Cors | None = None
    # "./app.py:app" or "module:app": a Starlette (or FastAPI) app whose routes win over ours.
    app: str | None = None
    disable_assistants: bool = False
    disable_threads: bool = False
    disable_runs: bool = False
    disable_meta: bool = False
    disable_store: bool = False
    disable_ui: bool = False
    disable_mcp: bool = False
    disable_a2a: bool = False
    disable_webhooks: bool = False
    # Whether the custom app's routes need the same auth as the API's.
    enable_custom_route_auth: bool = False
    # Whether the custom app's middleware runs before auth (the default) or after it.
    middleware_order: MiddlewareOrder = "middleware_first"
    # Keys given that the gateway does not implement, as "http.<key>".
    ignored: tuple[str, ...] = field(default=(), compare=False)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HttpConfigError(f"{where} must be a list of strings")
    return tuple(value)


def _cors(raw: Any) -> Cors:
    if not isinstance(raw, dict):
        raise HttpConfigError("http.cors must be an object")
    known = {*_CORS_LISTS, "allow_credentials", "allow_origin_regex", "max_age"}
    unknown = sorted(set(raw) - known)
    if unknown:
        # A CORS policy applied only in part could let origins in that were meant to stay out.
        raise HttpConfigError(f"http.cors has keys the gateway does not know: {', '.join(unknown)}")
    args: dict[str, Any] = {}
    for name in _CORS_LISTS:
        if raw.get(name) is not None:
            args[name] = _strings(raw[name], f"http.cors.{name}")
    if raw.get("allow_credentials") is not None:
        if not isinstance(raw["allow_credentials"], bool):
            raise HttpConfigError("http.cors.allow_credentials must be true or false")
        args["allow_credentials"] = raw["allow_credentials"]
    if raw.get("allow_origin_regex") is not None:
        if not isinstance(raw["allow_origin_regex"], str):
            raise HttpConfigError("http.cors.allow_origin_regex must be a string")
        args["allow_origin_regex"] = raw["allow_origin_regex"]
    if raw.get("max_age") is not None:
        if not isinstance(raw["max_age"], int) or isinstance(raw["max_age"], bool) or raw["max_age"] < 0:
            raise HttpConfigError("http.cors.max_age must be a number of seconds")
        args["max_age"] = raw["max_age"]
    return Cors(**args)


def parse_http(raw: Any) -> HttpConfig:
    if raw is None:
        return HttpConfig()
    if not isinstance(raw, dict):
        raise HttpConfigError("http must be an object")
    args: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in raw.items():
        if key in _SWITCHES:
            if not isinstance(value, bool):
                raise HttpConfigError(f"http.{key} must be true or false")
            args[key] = value
        elif key == "cors":
            args["cors"] = None if value is None else _cors(value)
        elif key == "app":
            if value is not None and (not isinstance(value, str) or ":" not in value):
                raise HttpConfigError("http.app must be './file.py:name' or 'module:name'")
            args["app"] = value
        elif key == "middleware_order":
            if value is not None and value not in ("middleware_first", "auth_first"):
                raise HttpConfigError("http.middleware_order must be 'middleware_first' or 'auth_first'")
            args["middleware_order"] = value or "middleware_first"
        else:
            ignored.append(f"http.{key}" + ("" if key in NOT_IMPLEMENTED else " (unknown)"))
    return HttpConfig(**args, ignored=tuple(ignored))


def load_app(ref: str, base: Path) -> Starlette:
    """The user's app of `http.app`, imported as the graphs are."""
    from starlette.applications import Starlette

    app = load_object(
        ref,
        base,
        key="http.app",
        namespace="_gateway_http_app",
        want="a Starlette or FastAPI app",
        error=HttpConfigError,
    )
    if not isinstance(app, Starlette):
        target, _, attr = ref.rpartition(":")
        raise HttpConfigError(f"http.app: {target!r} has {kind(app)} at {attr!r}, not a Starlette or FastAPI app")
    return app


def read_http(path: str) -> tuple[HttpConfig, Starlette | None]:
    """The `http` section of the langgraph.json at `path`, and its app, for the bridge, which
    serves the HTTP API of a gateway that serves the same file."""
    file = Path(path).resolve()
    try:
        raw = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise HttpConfigError(f"{file}: {exc}") from None
    if not isinstance(raw, dict):
        raise HttpConfigError(f"{file}: not a langgraph.json object")
    http = parse_http(raw.get("http"))
    if http.app and http.enable_custom_route_auth:
        # The gateway authenticates; the bridge has no auth handler to run on the app's routes.
        raise HttpConfigError(f"{file}: http.enable_custom_route_auth is not available through the bridge")
    app = None
    if http.app:
        for dep in raw.get("dependencies") or ["."]:
            folder = (file.parent / dep).resolve()
            if folder.is_dir() and str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
        app = load_app(http.app, file.parent)
    return http, app
