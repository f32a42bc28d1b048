"""Custom auth against the LangGraph Agent Server's own (`langgraph dev`, which honours `auth.path`
and `http.cors`), as the oracle for statuses: both serve tests/graphs/auth/langgraph.json, and
every case of tests/conformance/auth_cases.json must get the same answers from both.

Where the reference is broken we are stricter, and no case covers it: a join of another user's
run stream, or another user's thread stream, is 404 here; the reference answers 200 and sends an
`error` event."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests._auth import auth_config, auth_gateway
from tests._langgraph_dev import langgraph_dev
from tests.conformance._auth import AuthOutcome, compare_auth, load_auth_cases

CASES = load_auth_cases()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    scratch = tmp_path_factory.mktemp("auth-reference")
    with langgraph_dev(auth_config(scratch), scratch, jobs=8) as url:
        yield url


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, _ = auth_gateway(tmp_path_factory.mktemp("auth-candidate"))
    yield proc.http_url
    proc.kill()


@pytest.fixture(scope="module")
def outcomes(reference: str, candidate: str) -> dict[str, AuthOutcome]:
    return {outcome.case.name: outcome for outcome in asyncio.run(compare_auth(reference, candidate, CASES))}


@pytest.mark.parametrize("name", [case.name for case in CASES])
def test_auth_case_matches_the_reference(outcomes: dict[str, AuthOutcome], name: str) -> None:
    outcome = outcomes[name]
    assert outcome.matched, outcome.report(verbose=True)
