"""A graph that notes each run it executes in the file $CANARY_FILE, so that a test can tell
that requests with bad credentials never reached a graph."""

from __future__ import annotations

import os
from typing import TypedDict

from langgraph.graph import START, StateGraph


class State(TypedDict, total=False):
    note: str


def note(state: State) -> State:
    if path := os.environ.get("CANARY_FILE"):
        with open(path, "a") as file:
            file.write(f"{state.get('note', '')}\n")
    return {"note": "ran"}


graph = StateGraph(State).add_node(note).add_edge(START, "note").compile()
