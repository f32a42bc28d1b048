"""The JS SDK's thread stream client (@langchain/langgraph-sdk `client.threads.stream`, from
node_modules) under node, on both transports, against the gateway's edge and the bridge's."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests._server import ROOT

SCRIPT = ROOT / "tests" / "protocol" / "js" / "stream_check.mjs"
STREAM_CLIENT = ROOT / "node_modules" / "@langchain" / "langgraph-sdk" / "dist" / "client" / "stream"


def _websocket_flag(node: str) -> list[str]:
    # node 20 has a global WebSocket behind a flag; 22 on have it on.
    probe = subprocess.run([node, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"], timeout=30)
    return [] if probe.returncode == 0 else ["--experimental-websocket"]


@pytest.mark.parametrize("transport", ["sse", "websocket"])
def test_js_thread_stream(server: str, transport: str) -> None:
    node = shutil.which("node")
    if node is None or not STREAM_CLIENT.is_dir():
        pytest.skip("needs node and @langchain/langgraph-sdk >= 1.15 in node_modules (npm install)")
    cmd = [node, *_websocket_flag(node), str(SCRIPT), server, transport]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    seen: dict[str, Any] = json.loads(result.stdout)
    answer = "The weather in Lisbon is sunny."
    assert seen["agent"]["texts"] == ["Let me check the weather.", answer]
    assert seen["agent"]["tools"] == [
        {"name": "get_weather", "input": {"city": "Lisbon"}, "output": "It is sunny in Lisbon."}
    ]
    assert seen["agent"]["output"] == [
        "weather in Lisbon",
        "Let me check the weather.",
        "It is sunny in Lisbon.",
        answer,
    ]
    assert seen["interrupt"] == {"payload": {"question": "Approve 'deploy'?"}, "namespace": []}
    assert seen["approval"] == {"action": "deploy", "approved": True}
    assert seen["subgraphsOutput"] == {"foo": "hi! foobar"}
    assert [s["name"] for s in seen["subgraphs"]] == ["node_2"]
