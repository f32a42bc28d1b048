"""Graph factories: a langgraph.json graph that is a function rather than a graph, called by the
server whenever it needs the graph (each run, each state read, schemas), as the LangGraph Agent
Server calls it. A factory takes nothing, the config, a `langgraph_sdk.runtime.ServerRuntime`, or
both (by keyword, in either order, the runtime told apart by its annotation); it may be async,
and it may return a graph, a `StateGraph`, or an (async) context manager that yields one."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args, get_origin

from langchain_core.runnables import RunnableConfig
from langgraph_sdk.runtime import ServerRuntime

from gateway.shared.compat import _ExecutionRuntime, _ReadRuntime

# Names a factory's string annotations may use without importing them at runtime (for instance
# under `if TYPE_CHECKING:`), as the Agent Server resolves them.
_NAMES: dict[str, Any] = {"ServerRuntime": ServerRuntime, "RunnableConfig": RunnableConfig, "Config": RunnableConfig}


def _is_runtime(annotation: Any) -> bool:
    """ServerRuntime, ServerRuntime[Ctx], its concrete classes, or any of them Annotated or
    Optional."""
    runtimes = (_ExecutionRuntime, _ReadRuntime)
    if annotation is ServerRuntime:
        return True
    if isinstance(annotation, type):
        return issubclass(annotation, runtimes)
    origin = get_origin(annotation)
    if origin is None:
        return False
    if origin is ServerRuntime or (isinstance(origin, type) and issubclass(origin, runtimes)):
        return True
    args = get_args(annotation)
    return bool(args) and _is_runtime(args[0])


@dataclass(frozen=True)
class GraphFactory:
    fn: Callable[..., Any]
    # The names the config and the runtime are passed under; None: not asked for.
    config_param: str | None = None
    runtime_param: str | None = None

    @classmethod
    def of(cls, fn: Callable[..., Any]) -> GraphFactory:
        """Classifies `fn` by its parameters; ValueError says why it cannot be a factory."""
        params = list(inspect.signature(fn).parameters.values())
        try:
            hints = typing.get_type_hints(fn, localns=_NAMES, include_extras=True)
        except Exception:
            hints = {}
        runtime = [p.name for p in params if _is_runtime(hints.get(p.name, p.annotation))]
        if len(params) == 0:
            return cls(fn)
        if len(params) == 1:
            name = params[0].name
            return cls(fn, runtime_param=name) if runtime else cls(fn, config_param=name)
        if len(params) == 2:
            if len(runtime) != 1:
                raise ValueError(
                    "a graph factory with two parameters takes a config and a runtime: annotate the runtime's "
                    "as langgraph_sdk.runtime.ServerRuntime"
                )
            config = next(p.name for p in params if p.name != runtime[0])
            return cls(fn, config_param=config, runtime_param=runtime[0])
        raise ValueError(
            f"a graph factory takes 0, 1 or 2 parameters (a config and a ServerRuntime), not {len(params)}: "
            f"{', '.join(p.name for p in params)}"
        )

    def __call__(self, config: RunnableConfig, runtime: ServerRuntime) -> Any:
        kwargs: dict[str, Any] = {}
        if self.config_param is not None:
            kwargs[self.config_param] = config
        if self.runtime_param is not None:
            kwargs[self.runtime_param] = runtime
        return self.fn(**kwargs)
