"""The one way langgraph.json names Python objects: "./file.py:attr" (relative to the config's
folder) or "module:attr". Graphs, `auth.path`, `http.app`, `store.path` and `store.index.embed`
are all loaded here, so they fail alike: one line that names the key and the file."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

_JS = (".ts", ".mts", ".cts", ".js", ".mjs", ".cjs")


class ConfigError(ValueError):
    """The config file or an object it names cannot be loaded; the message names the key."""


def load_object(
    ref: Any, base: Path, *, key: str, namespace: str, want: str | None = None, error: type[ConfigError] = ConfigError
) -> Any:
    """The object `ref` names, for the config key `key` ("graphs.agent", "http.app", ...).
    A file is imported once per `namespace` and stem (`sys.modules[f"{namespace}.{stem}"]`), as
    the Agent Server does, so that its own relative imports and pickling work. `want` names what
    the caller expects there ("a LangGraph graph"), for the error when nothing is; `error` is the
    ConfigError subclass raised."""
    if not isinstance(ref, str) or ":" not in ref:
        raise error(f"{key} must be './file.py:name' or 'module:name', not {ref!r}")
    target, _, attr = ref.rpartition(":")
    if target.endswith(_JS):
        raise error(f"{key}: {ref!r} is JavaScript, which the gateway does not run")
    try:
        if target.endswith(".py") or "/" in target:
            file = (base / target).resolve()
            name = f"{namespace}.{file.stem}"
            spec = importlib.util.spec_from_file_location(name, file)
            if spec is None or spec.loader is None or not file.is_file():
                raise error(f"{key}: cannot load {file}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except ConfigError:
        raise
    except Exception as exc:
        raise error(f"{key}: importing {target!r} failed: {type(exc).__name__}: {exc}") from exc
    if not hasattr(module, attr):
        raise error(f"{key}: {target!r} has nothing at {attr!r}" + (f", not {want}" if want else ""))
    return getattr(module, attr)


def kind(value: Any) -> str:
    """How an error names what it found instead of what it wanted."""
    return "nothing" if value is None else f"a {type(value).__name__}"
