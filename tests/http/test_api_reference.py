"""The SDKs' calls beyond streaming (tests/http/_api_scenario.py and js/api_check.mjs) against the
LangGraph Agent Server's own (`langgraph dev` on the test graphs) and ours: the Python SDK, sync
and async, and the JS SDK, each on the gateway (sqlite, and Postgres with Redis) and through the
bridge. What each call answers must match, once ids and timestamps are normalised."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from typing import Any

import pytest
from langgraph_sdk import get_client, get_sync_client

from tests._normalise import Normaliser
from tests._server import ROOT, GatewayProcess
from tests.conformance._normalise import without_volatile
from tests.http._api_scenario import scenario, with_async, with_sync
from tests.http._bridge import BridgeProcess

SCRIPT = ROOT / "tests" / "http" / "js" / "api_check.mjs"
SDK = ROOT / "node_modules" / "@langchain" / "langgraph-sdk"


def comparable(notes: list[Any]) -> list[Any]:
    return Normaliser()(json.loads(json.dumps(notes, default=str)))


def assert_same(reference: list[Any], candidate: list[Any]) -> None:
    ref, cand = comparable(reference), comparable(candidate)
    for expected, got in zip(ref, cand, strict=False):
        assert got == expected, f"step {expected[0]!r}:\n  reference: {expected[1]}\n  ours:      {got[1]}"
    assert len(cand) == len(ref)


def python_async(url: str) -> list[Any]:
    async def run() -> list[Any]:
        return await scenario(with_async(get_client(url=url)))

    return asyncio.run(run())


def python_sync(url: str) -> list[Any]:
    return asyncio.run(scenario(with_sync(get_sync_client(url=url))))


@pytest.fixture(scope="module")
def expected(reference: str) -> list[Any]:
    return python_async(reference)


def test_python_async_sdk(expected: list[Any], gateway: GatewayProcess) -> None:
    assert_same(expected, python_async(gateway.http_url))


def test_python_sync_sdk(expected: list[Any], gateway: GatewayProcess) -> None:
    assert_same(expected, python_sync(gateway.http_url))


def test_python_sdk_through_the_bridge(expected: list[Any], bridge: BridgeProcess) -> None:
    assert_same(expected, python_async(bridge.http_url))


def js(url: str) -> list[Any]:
    node = shutil.which("node")
    if node is None or not SDK.is_dir():
        pytest.skip("needs node and the JS SDK in node_modules (npm install)")
    done = subprocess.run([node, str(SCRIPT), url], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    notes: list[Any] = [[step, without_volatile(value)] for step, value in json.loads(done.stdout)]
    return notes


@pytest.fixture(scope="module")
def expected_js(reference: str) -> list[Any]:
    return js(reference)


def test_js_sdk(expected_js: list[Any], gateway: GatewayProcess) -> None:
    assert_same(expected_js, js(gateway.http_url))


def test_js_sdk_through_the_bridge(expected_js: list[Any], bridge: BridgeProcess) -> None:
    assert_same(expected_js, js(bridge.http_url))
