"""What the two SQL backends write differently in the statements they share: placeholders
(shared statements are written with `?`, Postgres takes `%s`), JSON (Postgres keeps objects as
`jsonb` and searches them by containment, sqlite keeps text and walks it with json_each()),
lists of values, booleans and moments in time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from gateway.shared.serde import json_text


class Dialect:
    # What a SELECT appends to a JSON column to read it as text; to a graph data column to read
    # it as a JSON object.
    as_text = ""
    as_object = ""
    # The argument of a JSON object column, and of a graph data (`values`, ...) one.
    jsonb = "?"
    json = "?"
    true = "1"
    # What orders text byte by byte, as both backends order it.
    collate = ""
    nulls_last = ""
    # What locks the rows a transaction reads (sqlite: its one writer holds the file).
    for_update = ""
    # The position of a substring in a string, from 1 (0 when absent).
    find = "instr"

    def sql(self, text: str) -> str:
        """A statement written with `?` placeholders, in this dialect's."""
        return text

    def data(self, value: bytes) -> Any:
        return value

    def moment(self, value: datetime | None) -> Any:
        return value

    def flag(self, value: bool) -> Any:
        return value

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """A condition that holds where `column` is one of `values`."""
        if not values:
            return "0 = 1", []
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)

    def contains(self, column: str, wanted: dict[str, Any]) -> tuple[str, list[Any]]:
        """A condition that holds where the JSON object in `column` has each key of `wanted`
        with its value."""
        raise NotImplementedError

    def equals(self, column: str, key: str, value: Any) -> tuple[str, list[Any]]:
        """A condition that holds where the JSON object in `column` has `value` at `key`."""
        raise NotImplementedError

    def has_all(self, column: str, key: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """A condition that holds where the JSON object in `column` has an array at `key`
        with each of `values` among its elements."""
        raise NotImplementedError


class Postgres(Dialect):
    as_text = "::text"
    as_object = "::jsonb"
    jsonb = "?::jsonb"
    json = "?::json"
    true = "TRUE"
    collate = ' COLLATE "C"'
    nulls_last = " NULLS LAST"
    for_update = " FOR UPDATE"
    find = "strpos"

    def sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def data(self, value: bytes) -> Any:
        return value.decode()

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?)", [list(values)]

    # Containment (`@>`) compares JSON values as jsonb does (1 equals 1.0, true is not 1).
    def contains(self, column: str, wanted: dict[str, Any]) -> tuple[str, list[Any]]:
        return f"{column} @> ?::jsonb", [json_text(wanted)]

    def equals(self, column: str, key: str, value: Any) -> tuple[str, list[Any]]:
        return f"{column} @> ?::jsonb", [json_text({key: value})]

    def has_all(self, column: str, key: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"(jsonb_typeof({column} -> ?) = 'array' AND {column} -> ? @> ?::jsonb)", [key, key, json_text(values)]


def _json_value(value: Any) -> tuple[str, tuple[Any, ...]]:
    """A condition on a row of json_each() that holds when its value equals `value`."""
    if value is None:
        return "type = 'null'", ()
    if value is True:
        return "type = 'true'", ()
    if value is False:
        return "type = 'false'", ()
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        # sqlite holds a JSON integer past 64 bits as a real, and cannot bind the int.
        return "type IN ('integer', 'real') AND value = ?", (float(value),)
    if isinstance(value, (int, float)):
        return "type IN ('integer', 'real') AND value = ?", (value,)
    if isinstance(value, str):
        return "type = 'text' AND value = ?", (value,)
    kind = "object" if isinstance(value, dict) else "array"
    return "type = ? AND value = json(?)", (kind, json_text(value))


class Sqlite(Dialect):
    def moment(self, value: datetime | None) -> Any:
        """A moment as fixed-width UTC text, which sqlite orders as it orders time."""
        # isoformat, not strftime: strftime's %Y does not pad years before 1000 to four digits.
        return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")

    def flag(self, value: bool) -> Any:
        return int(value)

    def contains(self, column: str, wanted: dict[str, Any]) -> tuple[str, list[Any]]:
        # One json_each() per record, whatever the number of keys: a walk of the object each
        # (an EXISTS per key) made a search's cost its keys times its records' size, on the loop.
        tests: list[str] = []
        args: list[Any] = list(wanted)
        for key, value in wanted.items():
            condition, values = _json_value(value)
            tests.append(f"(key = ? AND {condition})")
            args.extend((key, *values))
        # The object's keys are distinct (written from a dict): one matching member per wanted key.
        sql = (
            f"(SELECT count(*) FROM json_each(CAST({column} AS TEXT)) WHERE key IN ({', '.join('?' * len(wanted))}) "
            f"AND ({' OR '.join(tests)})) = ?"
        )
        return sql, [*args, len(wanted)]

    def equals(self, column: str, key: str, value: Any) -> tuple[str, list[Any]]:
        test, values = _json_value(value)
        return f"EXISTS (SELECT 1 FROM json_each(CAST({column} AS TEXT)) WHERE key = ? AND {test})", [key, *values]

    def has_all(self, column: str, key: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        elements = ""
        args: list[Any] = [key]
        for wanted in values:
            test, element_args = _json_value(wanted)
            elements += f" AND EXISTS (SELECT 1 FROM json_each(m.value) WHERE {test})"
            args.extend(element_args)
        sql = f"EXISTS (SELECT 1 FROM json_each(CAST({column} AS TEXT)) AS m WHERE m.key = ? AND m.type = 'array'{elements})"
        return sql, args


POSTGRES = Postgres()
SQLITE = Sqlite()
