"""A node that sends custom data with the stream writer."""

from typing import TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import START, StateGraph


class State(TypedDict):
    query: str
    answer: str


def node(state: State) -> dict:
    writer = get_stream_writer()
    writer({"custom_key": "Generating custom data inside node"})
    writer({"progress": 50})
    return {"answer": "some data"}


graph = StateGraph(State).add_node(node).add_edge(START, "node").compile()
