"""An @auth.on handler's filter as the Agent Server accepts it, turned into what storage applies;
what cannot be applied is refused, never ignored."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.auth import InvalidFilter, parse_filter
from gateway.shared.records import AccessFilter, Contains, Equals


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ({"owner": "alice"}, AccessFilter((Equals("owner", "alice"),))),
        ({"owner": {"$eq": "alice"}}, AccessFilter((Equals("owner", "alice"),))),
        ({"tags": {"$contains": "a"}}, AccessFilter((Contains("tags", ("a",)),))),
        ({"tags": {"$contains": ["a", 1]}}, AccessFilter((Contains("tags", ("a", 1)),))),
        (
            {"n": 1, "flag": True, "none": None},
            AccessFilter((Equals("n", 1), Equals("flag", True), Equals("none", None))),
        ),
        (
            {"$or": [{"owner": "a"}, {"shared": {"$contains": "a"}}], "org": "x"},
            AccessFilter(
                (Equals("org", "x"),),
                any_of=(AccessFilter((Equals("owner", "a"),)), AccessFilter((Contains("shared", ("a",)),))),
            ),
        ),
        (
            {"$and": [{"a": 1}, {"$or": [{"b": 2}, {"c": 3}]}]},
            AccessFilter(
                all_of=(
                    AccessFilter((Equals("a", 1),)),
                    AccessFilter(any_of=(AccessFilter((Equals("b", 2),)), AccessFilter((Equals("c", 3),)))),
                )
            ),
        ),
    ],
)
def test_the_agent_servers_filters(raw: dict[str, Any], parsed: AccessFilter) -> None:
    assert parse_filter(raw) == parsed


@pytest.mark.parametrize(
    "raw",
    [
        {"owner": {"$ne": "alice"}},  # an operator the Agent Server does not have
        {"owner": {}},
        {"$not": {"owner": "a"}},
        {"owner": {"nested": "object"}},
        {"owner": ["a", "b"]},
        {"owner": {"$eq": {"a": 1}}},
        {"n": 2**70},
        {"n": float("nan")},
        {"$or": [{"a": 1}]},
        {"$or": {"a": 1}},
        {"$and": [{"$or": [{"$and": [{"a": 1}, {"b": 2}]}, {"c": 3}]}, {"d": 4}]},  # three levels
        "owner",
    ],
)
def test_what_cannot_be_applied_is_refused(raw: Any) -> None:
    with pytest.raises(InvalidFilter) as refused:
        parse_filter(raw)
    assert refused.value.http_status == 500 and "filter" in refused.value.message


def test_allows_compares_as_json() -> None:
    owner = AccessFilter((Equals("owner", "alice"),))
    assert owner.allows({"owner": "alice", "x": 1})
    assert not owner.allows({"owner": "bob"}) and not owner.allows({})
    assert AccessFilter((Equals("n", 1),)).allows({"n": 1.0})
    assert not AccessFilter((Equals("n", 1),)).allows({"n": True})
    assert not AccessFilter((Equals("v", None),)).allows({})
    members = AccessFilter((Contains("team", ("a", "b")),))
    assert members.allows({"team": ["b", "c", "a"]})
    assert not members.allows({"team": ["a"]}) and not members.allows({"team": "ab"})
    assert AccessFilter().allows({})
