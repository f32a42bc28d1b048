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
    if isinstance(exc, EmptyInputError) and str(exc).startswith("Received no input"):
        # LangGraph's words name the graph's input channels, not what the client left out. Over
        # gRPC a missing input is often a client's: one that sets `input` to a plain object
        # where protobuf wants a google.protobuf.Value sends none.
        return {
            "error": name,
            "message": f"the run received no input, and its graph needs one ({exc}): send `input` "
            "(over gRPC a google.protobuf.Value: an object goes in its struct_value)",
        }
    if isinstance(exc, SHOWN_ERRORS) or name in ("HTTPException", "UserInterrupt"):
        return {"error": name, "message": str(exc)}
    return {"error": name, "message": "An internal error occurred"}
