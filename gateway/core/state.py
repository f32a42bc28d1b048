"""Thread state as the API shows it, built from LangGraph's StateSnapshot."""

from __future__ import annotations

from typing import Any

from langgraph.types import Interrupt, StateSnapshot

from gateway.core.stream import _checkpoint_ref
from gateway.shared.records import ThreadChange
from gateway.shared.serde import dumps

EMPTY_STATE: dict[str, Any] = {
    "values": {},
    "next": [],
    "tasks": [],
    "metadata": None,
    "created_at": None,
    "checkpoint": None,
    "parent_checkpoint": None,
    "interrupts": [],
    "checkpoint_id": None,
    "parent_checkpoint_id": None,
}


def interrupt_json(interrupt: Interrupt | dict[str, Any]) -> dict[str, Any]:
    if isinstance(interrupt, dict):
        interrupt = Interrupt(**interrupt)
    out: dict[str, Any] = {"id": interrupt.id, "value": interrupt.value}
    response_schema = getattr(interrupt, "response_schema", None)
    if response_schema is not None:
        out["response_schema"] = response_schema
    return out


def thread_state(state: StateSnapshot) -> dict[str, Any]:
    if state.config is None or not state.config.get("configurable", {}).get("checkpoint_id"):
        return dict(EMPTY_STATE)
    return {
        "values": state.values,
        "next": list(state.next),
        "tasks": [
            {
                "id": t.id,
                "name": t.name,
                "path": t.path,
                "error": t.error,
                "interrupts": [interrupt_json(i) for i in t.interrupts],
                "checkpoint": t.state["configurable"]
                if t.state is not None and not isinstance(t.state, StateSnapshot)
                else None,
                "state": thread_state(t.state) if isinstance(t.state, StateSnapshot) else None,
                "result": getattr(t, "result", None),
            }
            for t in state.tasks
        ],
        "metadata": state.metadata,
        "created_at": state.created_at,
        "checkpoint": _checkpoint_ref(state.config),  # type: ignore[arg-type]
        "parent_checkpoint": _checkpoint_ref(state.parent_config),  # type: ignore[arg-type]
        "interrupts": [interrupt_json(i) for i in getattr(state, "interrupts", ())],
        "checkpoint_id": state.config["configurable"].get("checkpoint_id"),
        "parent_checkpoint_id": state.parent_config["configurable"]["checkpoint_id"] if state.parent_config else None,
    }


def thread_change_from_state(state: StateSnapshot) -> ThreadChange:
    """What a thread's state sets on the thread: values, interrupts and, when the graph stopped
    before its end, the interrupted status."""
    interrupts: dict[str, list[dict[str, Any]]] = {}
    for task in state.tasks:
        if task.interrupts:
            interrupts[task.id] = [interrupt_json(i) for i in task.interrupts]
    return ThreadChange(
        status="interrupted" if state.next or interrupts else None,
        values=dumps(state.values),
        interrupts=dumps(interrupts),
        state_updated_at=state.created_at or None,
    )
