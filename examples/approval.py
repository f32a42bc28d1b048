"""Human in the loop: the node stops at interrupt() until a run resumes it with
{"command": {"resume": ...}}."""

from typing import TypedDict

from langgraph.graph import START, StateGraph
from langgraph.types import interrupt


class State(TypedDict):
    action: str
    approved: bool


def ask(state: State) -> dict:
    answer = interrupt({"question": f"Approve '{state['action']}'?"})
    return {"approved": answer in (True, "yes", "approve")}


graph = StateGraph(State).add_node(ask).add_edge(START, "ask").compile()
