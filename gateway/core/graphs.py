"""A graph as each use needs it: a run (`threads.create_run`), a read or an update of a thread's
state (`threads.read`, `threads.update`), an assistant's schemas or drawing (`assistants.read`).
A compiled graph of the config is copied with the checkpointer and the store. A factory
(gateway.config.factories) is called for that use, as the LangGraph Agent Server calls it: with the
config of the run (or of the assistant, or the thread) and a `langgraph_sdk.runtime.ServerRuntime`
(the caller, the store, and for a run its context); what it returns is awaited when it is a
coroutine, entered when it is an (async) context manager and exited when the use ends, and
compiled when it is a StateGraph."""

from __future__ import annotations

import copy
import inspect
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph_sdk.runtime import AccessContext, ServerRuntime

from gateway.auth import current_caller, put_caller
from gateway.config.graphs import GraphSpec
from gateway.shared.compat import CONFIG_KEY_RUNTIME, _ExecutionRuntime, _ReadRuntime
from gateway.shared.errors import GatewayError
from gateway.storage.store import Store


class InvalidGraph(GatewayError):
    """A graph factory gave something that is not a graph (HTTP 424, as on the Agent Server)."""

    http_status = 424


@asynccontextmanager
async def _entered(value: Any) -> AsyncIterator[Any]:
    if hasattr(value, "__aenter__") and hasattr(value, "__aexit__"):
        async with value as entered:
            yield entered
    elif hasattr(value, "__enter__") and hasattr(value, "__exit__"):
        with value as entered:
            yield entered
    elif inspect.isawaitable(value):
        yield await value
    else:
        yield value


class Graphs:
    def __init__(self, store: Store) -> None:
        self._store = store

    @asynccontextmanager
    async def build(
        self,
        spec: GraphSpec,
        config: Mapping[str, Any],
        access: AccessContext,
        *,
        checkpointer: BaseCheckpointSaver[Any] | None,
        context: Any = None,
    ) -> AsyncIterator[Pregel]:
        """The graph of `spec` for one use, with `checkpointer` and the store; `config` is the
        run's (for `threads.create_run`, with its caller), the assistant's or the thread's."""
        store = self._store.store
        if spec.factory is None:
            assert spec.graph is not None
            yield spec.graph.copy(update={"checkpointer": checkpointer, "store": store})
            return
        configurable = dict(config.get("configurable") or {})
        factory_config = cast(RunnableConfig, {**config, "configurable": configurable})
        caller = current_caller() if access != "threads.create_run" else None
        if caller is not None:
            put_caller(configurable, caller.user.to_json(), list(caller.permissions))
        user = configurable.get("langgraph_auth_user")
        runtime: ServerRuntime
        if access == "threads.create_run":
            # A copy: the factory may keep it, while the run's own context goes to the graph.
            runtime = _ExecutionRuntime(access_context=access, user=user, store=store, context=copy.copy(context))
        else:
            runtime = _ReadRuntime(access_context=access, user=user, store=store)
        # As on the Agent Server: get_config() and get_store() work inside the factory.
        configurable[CONFIG_KEY_RUNTIME] = runtime
        configurable["__is_for_execution__"] = access == "threads.create_run"
        async with AsyncExitStack() as stack:
            token = var_child_runnable_config.set(factory_config)
            try:
                made = await stack.enter_async_context(_entered(spec.factory(factory_config, runtime)))
            finally:
                var_child_runnable_config.reset(token)
            if isinstance(made, StateGraph):
                made = made.compile()
            if not isinstance(made, Pregel):
                raise InvalidGraph(
                    f"Graph '{spec.graph_id}' is not valid: its factory gave a {type(made).__name__}, not a graph"
                )
            update: dict[str, Any] = {"checkpointer": checkpointer, "store": store}
            if made.name == "LangGraph":
                update["name"] = spec.graph_id
            yield made.copy(update=update)
