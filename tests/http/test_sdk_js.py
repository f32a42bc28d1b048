"""The official JS SDK (@langchain/langgraph-sdk, from node_modules) against the real server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests._auth import auth_gateway
from tests._server import ROOT, GatewayProcess

SCRIPT = Path(__file__).parent / "js" / "sdk_check.mjs"
SDK = ROOT / "node_modules" / "@langchain" / "langgraph-sdk"


@pytest.fixture(scope="module")
def seen(gateway: GatewayProcess) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not SDK.is_dir():
        pytest.skip("needs node and the JS SDK in node_modules (npm install)")
    result = subprocess.run(
        [node, str(SCRIPT), gateway.http_url], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def events(parts: list[dict[str, Any]]) -> list[str]:
    return [p["event"] for p in parts]


def test_stream_several_modes(seen: dict[str, Any]) -> None:
    parts = seen["updates"]
    assert events(parts) == ["metadata", "values", "updates", "values", "updates", "values"]
    assert seen["created"] == {"run_id": parts[0]["data"]["run_id"], "thread_id": seen["thread"]["thread_id"]}
    assert parts[-1]["data"] == {"topic": "ice cream and cats", "joke": "This is a joke about ice cream and cats"}
    assert all(p["id"] for p in parts)


def test_messages_custom_and_subgraphs(seen: dict[str, Any]) -> None:
    tokens = [p["data"][0]["content"] for p in seen["messages"] if p["event"] == "messages"]
    assert "".join(tokens) == "Why did the js cross the road? To get to the other side!"
    assert [p["data"] for p in seen["custom"][1:]] == [
        {"custom_key": "Generating custom data inside node"},
        {"progress": 50},
    ]
    names = events(seen["subgraphs"])
    assert names[:2] == ["metadata", "updates"] and names[-1] == "updates"
    assert len(names) == 5 and all(n.startswith("updates|node_2:") for n in names[2:4])


def test_join_stream_of_a_background_run(seen: dict[str, Any]) -> None:
    assert [p["data"]["tick"] for p in seen["joined"] if p["event"] == "custom"] == list(range(20))
    assert seen["joinedCustomOnly"] == seen["joined"][: len(seen["joinedCustomOnly"])]


def test_wait_state_history_and_errors(seen: dict[str, Any]) -> None:
    assert seen["wait"] == {"topic": "pie and cats", "joke": "This is a joke about pie and cats"}
    assert seen["state"]["values"] == seen["wait"]
    assert len(seen["history"]) == 3
    assert seen["runs"][0]["status"] == "success"
    assert [a["graph_id"] for a in seen["assistants"]] == ["agent"]
    assert seen["badAssistant"]["status"] == 422


def test_each_users_client_with_custom_auth(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not SDK.is_dir():
        pytest.skip("needs node and the JS SDK in node_modules (npm install)")
    proc, canary = auth_gateway(tmp_path)
    try:
        result = subprocess.run(
            [node, str(SCRIPT.with_name("auth_check.mjs")), proc.http_url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        proc.kill()
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {
        "owner": "alice",
        "userId": "alice",
        "bobGets": 404,
        "bobRuns": 404,
        "bobSees": False,
        "aliceSees": True,
        "anonymous": 401,
    }
    assert "intruder" not in canary.read_text()
