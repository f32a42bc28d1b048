"""Plain Python values in, plain Python values out: the SDK's JSON shapes over the gateway's
protobuf messages.

Out: every field by its proto name; `*_json` text decoded under the name without the suffix;
enums by their short lowercase name (`RUN_STATUS_SUCCESS` -> "success", unset -> None);
timestamps as RFC 3339 text (unset -> None); Struct and Value as dicts and JSON values."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

_JSON_SUFFIX = "_json"
_ENUM_PREFIXES: dict[str, str] = {}


def _prefix(enum: EnumDescriptor) -> str:
    prefix = _ENUM_PREFIXES.get(enum.full_name)
    if prefix is None:
        # RunStatus -> RUN_STATUS_
        name = enum.name
        prefix = "".join("_" + c if c.isupper() and i else c for i, c in enumerate(name)).upper() + "_"
        _ENUM_PREFIXES[enum.full_name] = prefix
    return prefix


def enum_name(enum: EnumDescriptor, number: int) -> str | None:
    value = enum.values_by_number.get(number)
    if value is None or value.number == 0:
        return None
    return str(value.name).removeprefix(_prefix(enum)).lower()


def enum_value(enum: EnumDescriptor, name: str, field: str) -> int:
    """`name` ("enqueue", "messages-tuple") as the enum's number; ValueError naming `field`."""
    full = _prefix(enum) + name.upper().replace("-", "_")
    value = enum.values_by_name.get(full)
    if value is None or value.number == 0:
        choices = sorted(v.name.removeprefix(_prefix(enum)).lower() for v in enum.values if v.number)
        raise ValueError(f"{field}: {name!r} is not one of {choices}")
    return int(value.number)


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.enum_type is not None:
        return enum_name(field.enum_type, value)
    return value


def _value(field: FieldDescriptor, value: Any) -> Any:
    message = field.message_type
    if message is None:
        return _scalar(field, value)
    if message.full_name in ("google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"):
        return json_format.MessageToDict(value)
    if message.full_name == "google.protobuf.Timestamp":
        return value.ToJsonString()
    return to_dict(value)


def to_dict(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        name = field.name
        value = getattr(message, name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            entry_value = field.message_type.fields_by_name["value"]
            out[name] = {k: _value(entry_value, v) for k, v in value.items()}
        elif field.is_repeated:
            out[name] = [_value(field, v) for v in value]
        elif field.message_type is not None:
            out[name] = _value(field, value) if message.HasField(name) else None
        elif field.type == FieldDescriptor.TYPE_STRING and name.endswith(_JSON_SUFFIX):
            out[name.removesuffix(_JSON_SUFFIX)] = json.loads(value) if value else None
        else:
            out[name] = _scalar(field, value)
    return out


def struct(value: Mapping[str, Any] | None, field: str) -> struct_pb2.Struct | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"{field}: expected a dict, got {type(value).__name__}")
    out = struct_pb2.Struct()
    json_format.ParseDict(value, out)
    return out


def value(data: Any) -> struct_pb2.Value:
    out = struct_pb2.Value()
    json_format.ParseDict(data, out)
    return out


def timestamp(moment: str | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    out = timestamp_pb2.Timestamp()
    out.FromJsonString(moment)
    return out


def enums(enum: EnumDescriptor, names: str | Sequence[str] | None, field: str) -> list[int]:
    if names is None:
        return []
    if isinstance(names, str):
        names = [names]
    return [enum_value(enum, name, field) for name in names]


def build(message_class: type[Message], **fields: Any) -> Any:
    """A request from keyword arguments; None leaves a field unset."""
    message = message_class()
    for name, given in fields.items():
        if given is None:
            continue
        field = message_class.DESCRIPTOR.fields_by_name[name]
        if field.message_type is not None and not field.is_repeated:
            getattr(message, name).CopyFrom(given)
        elif field.is_repeated:
            getattr(message, name).extend(given)
        else:
            setattr(message, name, given)
    return message
