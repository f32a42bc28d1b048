"""How a graph's exception is shown to clients."""

from __future__ import annotations

from langgraph.errors import EmptyInputError, GraphBubbleUp, InvalidUpdateError, TaskNotFound

# Exception classes (and their subclasses) whose message is shown; any other exception is
# reported by class name with a generic message, so that internals do not leak.
SHOWN_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    RuntimeError,
    RecursionError,
    TimeoutError,
    InvalidUpdateError,
    GraphBubbleUp,
    EmptyInputError,
    TaskNotFound,
)


def error_payload(exc: BaseException) -> dict[str, str]:
    name = type(exc).__name__
    if isinstance(exc, SHOWN_ERRORS) or name in ("HTTPException", "UserInterrupt"):
        return {"error": name, "message": str(exc)}
    return {"error": name, "message": "An internal error occurred"}
