"""The run-create body of the HTTP API (which a cron's payload also is), validated into the
core's RunCreate: the HTTP edge parses requests with it, and the crons their payloads.

Unknown fields are ignored, as the Agent Server does (the SDKs send some on every call). A JSON
null on a known field is an error, except for `input` and `command`. Every error names its field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from gateway.shared.errors import BadRequest, InvalidArgument, shown
from gateway.shared.records import DURABILITIES, MULTITASK_STRATEGIES, STREAM_MODES, Durability, OnCompletion, RunCreate
from gateway.shared.util import is_uuid, uuid7

S = TypeVar("S", bound=str)
D = TypeVar("D", bound=str | None)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


# Keys the server sets itself; a client cannot smuggle them in.
_RESERVED_CONFIGURABLE = frozenset(
    {
        "langgraph_auth_user",
        "langgraph_auth_user_id",
        "langgraph_auth_permissions",
        "langgraph_request_id",
        "__langsmith_project__",
        "__langsmith_example_id__",
        "__request_start_time_ms__",
        "__after_seconds__",
        "__otel_traceparent__",
        "__otel_tracestate__",
        "__dd_trace_headers__",
        "__pregel_node_finished",
        "__context_provided__",
    }
)
_RESERVED_METADATA = frozenset({"thread_id", "assistant_id", "run_id", "cron_id", "counters_since_delta_snapshot"})

# Fields only the stateful schema knows: on a stateless request a null there is ignored.
_STATEFUL_ONLY = ("multitask_strategy", "interrupt_before", "interrupt_after", "if_not_exists", "checkpoint")


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = body.get(name)
    if value is None:
        if name in body:
            raise InvalidArgument(f"{name} must be {what}, not null")
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise InvalidArgument(f"{name} must be {what}, not {type_name(value)}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _enum(body: dict[str, Any], name: str, choices: Sequence[S], default: D) -> S | D:
    value = _field(body, name, str, f"one of {_choices(choices)}")
    if value is None:
        return default
    for choice in choices:
        if value == choice:
            return choice
    raise InvalidArgument(f"{name}: {shown(value)} is not one of {_choices(choices)}")


def _choices(choices: Sequence[str]) -> str:
    return ", ".join(repr(c) for c in choices)


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{name} must be an array of strings, not {type_name(value)}")
    return value


_PROTOCOL_ONLY = ("tools",)
_RUN_MODES = tuple(m for m in STREAM_MODES if m not in _PROTOCOL_ONLY)


def stream_modes(value: Any, name: str = "stream_mode") -> list[str]:
    """A stream mode or a list of them, deduplicated in order; none means values."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise InvalidArgument(f"{name} must be a stream mode or an array of them, not {type_name(value)}")
    modes: list[str] = []
    for mode in items:
        if mode in _PROTOCOL_ONLY:
            # As the Agent Server: tool events are the thread protocol's (its tools channel).
            raise InvalidArgument(
                f"{name}: {shown(mode)} is only streamed by the thread protocol (POST /threads/{{thread_id}}/stream/events)"
            )
        if not isinstance(mode, str) or mode not in _RUN_MODES:
            raise InvalidArgument(f"{name}: {shown(mode)} is not one of {_choices(_RUN_MODES)}")
        if mode not in modes:
            modes.append(mode)
    return modes or ["values"]


def _nodes(body: dict[str, Any], name: str) -> list[str] | str | None:
    value = body.get(name)
    if value is None:
        if name in body:
            raise InvalidArgument(f'{name} must be "*" or an array of node names, not null')
        return None
    if value == "*":
        return "*"
    if isinstance(value, str):
        raise InvalidArgument(f'{name} must be "*" or an array of node names, not {shown(value)}')
    return _strings(value, name)


def _without(value: dict[str, Any], reserved: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in reserved}


def _config(body: dict[str, Any]) -> dict[str, Any]:
    config = _field(body, "config", dict, "an object")
    if config is None:
        return {}
    config = dict(config)
    if "tags" in config:
        _strings(config["tags"], "config.tags")
    limit = config.get("recursion_limit")
    if "recursion_limit" in config and (not isinstance(limit, int) or isinstance(limit, bool)):
        raise InvalidArgument(f"config.recursion_limit must be an integer, not {type_name(limit)}")
    if "configurable" in config:
        configurable = config["configurable"]
        if not isinstance(configurable, dict):
            raise InvalidArgument(f"config.configurable must be an object, not {type_name(configurable)}")
        config["configurable"] = _without(configurable, _RESERVED_CONFIGURABLE)
    if isinstance(config.get("metadata"), dict):
        config["metadata"] = _without(config["metadata"], _RESERVED_METADATA)
    return config


def checkpoint_ref(body: dict[str, Any], name: str = "checkpoint") -> dict[str, Any] | None:
    """A checkpoint of the path's thread: its checkpoint_id, checkpoint_ns and checkpoint_map. These
    go into the graph's `configurable`, so nothing else may: a thread_id there (as the SDKs copy it
    from a state's checkpoint) is the path's, and another one would reach into another thread."""
    value = _field(body, name, dict, "an object")
    if value is None:
        return None
    ref: dict[str, Any] = {}
    for key, kind, what in (("checkpoint_id", str, "a checkpoint UUID"), ("checkpoint_ns", str, "a string")):
        item = value.get(key)
        if item is None:
            continue
        if not isinstance(item, kind) or (key == "checkpoint_id" and item and not is_uuid(item)):
            raise InvalidArgument(f"{name}.{key} must be {what}, not {shown(item)}")
        ref[key] = item
    if value.get("checkpoint_map") is not None:
        if not isinstance(value["checkpoint_map"], dict):
            raise InvalidArgument(f"{name}.checkpoint_map must be an object, not {type_name(value['checkpoint_map'])}")
        ref["checkpoint_map"] = value["checkpoint_map"]
    return ref


_COMMAND_FIELDS = ("resume", "update", "goto")


def check_command(command: Any) -> dict[str, Any] | None:
    """A run's `command` as the Agent Server's schema has it: `resume` (any JSON), `update` (an
    object, or an array of [key, value] pairs or a root value), `goto` (a node name, a
    {"node", "input"} Send, or an array of them), nothing else. An empty object is no command,
    as there; one that sets none of the three would fail inside the graph."""
    if command is None:
        return None
    if not isinstance(command, dict):
        raise InvalidArgument(f"command must be an object, not {type_name(command)}")
    if not command:
        return None
    for key in command:
        if key not in _COMMAND_FIELDS:
            raise InvalidArgument(f"command: unknown field {shown(key)}; a command has {_choices(_COMMAND_FIELDS)}")
    if all(command.get(key) is None for key in _COMMAND_FIELDS):
        raise InvalidArgument(f"command must set one of {_choices(_COMMAND_FIELDS)}")
    update = command.get("update")
    if update is not None and not isinstance(update, (dict, list)):
        raise InvalidArgument(f"command.update must be an object or an array, not {type_name(update)}")
    goto = command.get("goto")
    for item in goto if isinstance(goto, list) else [] if goto is None else [goto]:
        if isinstance(item, str):
            continue
        if not isinstance(item, dict) or not isinstance(item.get("node"), str) or "input" not in item:
            raise InvalidArgument('command.goto must be node names or {"node": ..., "input": ...} objects')
    return command


def check_input_or_command(input: Any, command: dict[str, Any] | None) -> None:
    # The Agent Server runs the command and drops the input without a word: refused here instead.
    if command and input is not None:
        raise InvalidArgument("input and command: give one or the other (a run with a command ignores its input)")


def run_create(body: dict[str, Any], *, thread_id: str | None, streaming: bool) -> RunCreate:
    """`thread_id` None is a stateless run. `streaming`: the /stream and /wait endpoints, which
    also take `on_disconnect`."""
    stateless = thread_id is None
    if stateless:
        body = {k: v for k, v in body.items() if not (k in _STATEFUL_ONLY and v is None)}
    if "assistant_id" not in body:
        raise InvalidArgument("assistant_id is required")
    assistant_id = _field(body, "assistant_id", str, "a string: an assistant UUID or a graph name")
    metadata = _field(body, "metadata", dict, "an object") or {}
    context = _field(body, "context", dict, "an object") or {}
    config = _config(body)
    command = check_command(body.get("command"))
    check_input_or_command(body.get("input"), command)
    context = _without(context, _RESERVED_CONFIGURABLE)
    if config.get("configurable") and context:
        raise BadRequest(
            "Cannot specify both configurable and context. Prefer setting context alone. Context was introduced "
            "in LangGraph 0.6.0 and is the long term planned replacement for configurable."
        )
    if stateless and command and command.get("resume") is not None:
        raise BadRequest("You must provide a thread_id when resuming.", field="thread_id")
    stream_mode = body.get("stream_mode")
    if stream_mode is None and "stream_mode" in body:
        raise InvalidArgument("stream_mode must be a stream mode or an array of them, not null")
    checkpoint = checkpoint_ref(body)
    checkpoint_id = _field(body, "checkpoint_id", str, "a checkpoint UUID")
    durability: Durability | None = _enum(body, "durability", DURABILITIES, None)
    if durability is None:
        checkpoint_during = _field(body, "checkpoint_during", bool, "a boolean")
        durability = "exit" if checkpoint_during is False else "async"
    after_seconds = _field(body, "after_seconds", (int, float), "a number") or 0
    for name, kind, what in (("webhook", str, "a string"), ("langsmith_tracer", dict, "an object")):
        _field(body, name, kind, what)
    if body.get("feedback_keys") is not None:
        _strings(body["feedback_keys"], "feedback_keys")
    on_completion: OnCompletion = _enum(body, "on_completion", ("delete", "keep"), "delete") if stateless else "delete"
    if stateless and on_completion == "keep":
        # A stateless run that keeps its thread is a run on a new thread: it has a checkpointer
        # (so it streams checkpoints) and its state outlives it.
        thread_id = uuid7()
    return RunCreate(
        assistant_id=assistant_id,
        thread_id=thread_id,
        input=body.get("input"),
        command=command,
        config=config,
        context=context,
        metadata=_without(metadata, _RESERVED_METADATA),
        stream_mode=stream_modes(stream_mode) if stream_mode is not None else ["values"],
        stream_subgraphs=bool(_field(body, "stream_subgraphs", bool, "a boolean")),
        stream_resumable=bool(_field(body, "stream_resumable", bool, "a boolean")),
        on_disconnect=_enum(body, "on_disconnect", ("cancel", "continue"), "continue") if streaming else "continue",
        multitask_strategy=_enum(body, "multitask_strategy", MULTITASK_STRATEGIES, "enqueue"),
        if_not_exists="create" if stateless else _enum(body, "if_not_exists", ("create", "reject"), "reject"),
        interrupt_before=_nodes(body, "interrupt_before"),
        interrupt_after=_nodes(body, "interrupt_after"),
        checkpoint_id=checkpoint_id or (checkpoint or {}).get("checkpoint_id") or None,
        checkpoint=checkpoint,
        durability=durability,
        on_completion=on_completion,
        after_seconds=float(after_seconds),
    )
