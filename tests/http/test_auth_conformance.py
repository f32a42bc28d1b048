"""Custom auth against the LangGraph Agent Server's own (`langgraph dev`, which honours `auth.path`
and `http.cors`), as the oracle for statuses: both serve tests/graphs/auth/langgraph.json, and
every case of tests/conformance/auth_cases.json must get the same answers from both.

Where the reference is broken we are stricter, and no case covers it: a join of another user's
run stream, or another user's thread stream, is 404 here; the reference answers 200 and sends an
`error` event."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests._auth import auth_config, auth_gateway
from tests.conformance._auth import AuthOutcome, compare_auth, load_auth_cases
from tests.http.test_conformance import _ensure_ref_venv, _free_port

CASES = load_auth_cases()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    langgraph = _ensure_ref_venv()
    scratch = tmp_path_factory.mktemp("auth-reference")
    config = auth_config(scratch)
    port = _free_port()
    log = (scratch / "langgraph-dev.log").open("w")
    env = {**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false"}
    proc = subprocess.Popen(
        [str(langgraph), "dev", "--config", str(config), "--port", str(port), "--no-browser", "--no-reload"]
        + ["--n-jobs-per-worker", "8"],
        cwd=scratch,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (scratch / "langgraph-dev.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "langgraph dev did not start in 120 s"
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


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
