"""A graph that answers with who ran it, as the server put the user into its config."""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph


class State(TypedDict, total=False):
    topic: str
    user_id: str
    permissions: list[str]
    user: dict[str, Any]


def whoami(state: State, config: RunnableConfig) -> State:
    configurable = config["configurable"]
    user = configurable.get("langgraph_auth_user")
    return {
        "user_id": configurable.get("langgraph_auth_user_id"),
        "permissions": list(configurable.get("langgraph_auth_permissions") or []),
        "user": {"identity": user.identity, "display_name": user.display_name, "tenant": user["tenant"]}
        if user is not None
        else {},
    }


graph = StateGraph(State).add_node(whoami).add_edge(START, "whoami").compile()
