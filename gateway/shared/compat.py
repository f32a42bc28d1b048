"""Every private name of LangChain and LangGraph that the gateway uses, in one place.

These names carry no compatibility promise: a release may move or drop them. pyproject.toml
caps each of these packages at the minor versions the tests ran, and tests/shared/test_compat.py
checks each name, so that an upgrade that moves one fails naming it rather than somewhere in a
run. What each is for:

- `langchain_core.language_models._compat_bridge`: turning a chat model's message chunks into
  the content-block events of the thread protocol (`messages` channel), as the Agent Server does.
- `langchain_core.utils._merge.merge_dicts`: merging chunks' additional kwargs the way
  `AIMessageChunk.__add__` does.
- `langgraph._internal._constants.CONFIG_KEY_RUNTIME`: where LangGraph reads the server runtime
  that graph factories and `Runtime.server` see.
- `langgraph_sdk.runtime._ExecutionRuntime` / `_ReadRuntime`: the two server runtimes (a run, a
  read of the graph) that factories receive, as the Agent Server builds them.
- `langgraph.store.sqlite.base._group_ops`: splitting a store batch by kind, as LangGraph's own
  sqlite store does, for the gateway's store over its sqlite connection.
"""

from __future__ import annotations

import importlib
from typing import Any

# (module, name): every private name this module re-exports.
PRIVATE: tuple[tuple[str, str], ...] = (
    ("langchain_core.language_models._compat_bridge", "_accumulate"),
    ("langchain_core.language_models._compat_bridge", "_accumulate_usage"),
    ("langchain_core.language_models._compat_bridge", "_build_message_finish"),
    ("langchain_core.language_models._compat_bridge", "_build_message_start"),
    ("langchain_core.language_models._compat_bridge", "_finalize_block"),
    ("langchain_core.language_models._compat_bridge", "_iter_protocol_blocks"),
    ("langchain_core.language_models._compat_bridge", "_start_skeleton"),
    ("langchain_core.language_models._compat_bridge", "_to_content_delta"),
    ("langchain_core.language_models._compat_bridge", "message_to_events"),
    ("langchain_core.utils._merge", "merge_dicts"),
    ("langgraph._internal._constants", "CONFIG_KEY_RUNTIME"),
    ("langgraph_sdk.runtime", "_ExecutionRuntime"),
    ("langgraph_sdk.runtime", "_ReadRuntime"),
    ("langgraph.store.sqlite.base", "_group_ops"),
)


def private(module: str, name: str) -> Any:
    """`module.name`, or an ImportError that names it and says what to do."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ImportError(
            f"{module}.{name} is not in the installed version: the gateway uses this private name "
            "(gateway/shared/compat.py); install the versions pyproject.toml allows, or adapt compat.py"
        ) from exc


try:
    from langchain_core.language_models._compat_bridge import (
        _accumulate,
        _accumulate_usage,
        _build_message_finish,
        _build_message_start,
        _finalize_block,
        _iter_protocol_blocks,
        _start_skeleton,
        _to_content_delta,
        message_to_events,
    )
    from langchain_core.utils._merge import merge_dicts
    from langgraph._internal._constants import CONFIG_KEY_RUNTIME
    from langgraph.store.sqlite.base import _group_ops
    from langgraph_sdk.runtime import _ExecutionRuntime, _ReadRuntime
except ImportError:
    for _module, _name in PRIVATE:
        private(_module, _name)  # raises, naming the first name that moved
    raise

__all__ = [
    "CONFIG_KEY_RUNTIME",
    "PRIVATE",
    "_ExecutionRuntime",
    "_ReadRuntime",
    "_accumulate",
    "_accumulate_usage",
    "_build_message_finish",
    "_build_message_start",
    "_finalize_block",
    "_group_ops",
    "_iter_protocol_blocks",
    "_start_skeleton",
    "_to_content_delta",
    "merge_dicts",
    "message_to_events",
    "private",
]
