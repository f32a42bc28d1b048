"""An `@auth.on` handler's filter, as the Agent Server accepts it, turned into the AccessFilter
that storage applies inside its queries.

    {"owner": "alice"}                              the value at "owner" is "alice"
    {"owner": {"$eq": "alice"}}                     the same
    {"tags": {"$contains": "a"}}                    "tags" is an array holding "a"
    {"tags": {"$contains": ["a", "b"]}}             ... holding "a" and "b"
    {"$or": [{...}, {...}], "k": v}                 one of the groups holds, and k is v
    {"$and": [{...}, {...}]}                        every group holds

Values are JSON scalars. Anything else (another operator, an object to compare, nesting past
two levels) is refused rather than ignored: a filter that is not applied shows what it hides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gateway.shared.errors import GatewayError
from gateway.shared.records import AccessFilter, Contains, Equals, Scalar

# As the Agent Server: `$or` and `$and` nest at most two levels deep.
MAX_NESTING = 2
_INT64 = 2**63


class InvalidFilter(GatewayError):
    """An auth handler returned a filter the gateway cannot apply (HTTP 500): the deployment's
    auth code is wrong, and nothing is served rather than everything."""

    http_status = 500


def _scalar(value: Any, where: str) -> Scalar:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int) and -_INT64 <= value < _INT64:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise InvalidFilter(
        f"an auth handler's filter compares {where} with a {type(value).__name__}: filters compare strings, "
        "numbers, booleans and null"
    )


def _groups(raw: Any, op: str, depth: int) -> tuple[AccessFilter, ...]:
    if not isinstance(raw, list) or len(raw) < 2:
        raise InvalidFilter(f"an auth handler's filter has an invalid {op}: it takes a list of at least 2 filters")
    return tuple(parse_filter(group, depth + 1) for group in raw)


def parse_filter(raw: Any, depth: int = 0) -> AccessFilter:
    if depth > MAX_NESTING:
        raise InvalidFilter(f"an auth handler's filter nests $or/$and more than {MAX_NESTING} levels deep")
    if not isinstance(raw, Mapping):
        raise InvalidFilter(f"an auth handler's filter must be a dict, not a {type(raw).__name__}")
    conditions: list[Equals | Contains] = []
    any_of: tuple[AccessFilter, ...] = ()
    all_of: tuple[AccessFilter, ...] = ()
    for key, value in raw.items():
        if not isinstance(key, str):
            raise InvalidFilter("an auth handler's filter has a key that is not a string")
        if key == "$or":
            any_of = _groups(value, key, depth)
        elif key == "$and":
            all_of = _groups(value, key, depth)
        elif key.startswith("$"):
            raise InvalidFilter(f"an auth handler's filter uses {key!r}: only $or and $and combine filters")
        elif isinstance(value, Mapping):
            if not value or set(value) - {"$eq", "$contains"}:
                raise InvalidFilter(
                    f"an auth handler's filter on {key!r} uses {sorted(map(str, value))}: the operators are $eq "
                    "and $contains"
                )
            if "$eq" in value:
                conditions.append(Equals(key, _scalar(value["$eq"], repr(key))))
            if "$contains" in value:
                wanted = value["$contains"]
                items = wanted if isinstance(wanted, list) else [wanted]
                conditions.append(Contains(key, tuple(_scalar(item, repr(key)) for item in items)))
        else:
            conditions.append(Equals(key, _scalar(value, repr(key))))
    return AccessFilter(tuple(conditions), any_of, all_of)
