"""The JS SDK's store client (@langchain/langgraph-sdk, from node_modules) against the gateway and
the bridge, on both backends."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests._server import ROOT
from tests._store import indexed, namespace, store_backend, store_bridge, store_gateway, store_url
from tests.http.test_sdk_js import SCRIPT, SDK

__all__ = ["store_backend", "store_bridge", "store_gateway", "store_url"]


@pytest.fixture
def seen(store_url: str, store_backend: str) -> tuple[str, dict[str, Any]]:
    node = shutil.which("node")
    if node is None or not SDK.is_dir():
        pytest.skip("needs node and the JS SDK in node_modules (npm install)")
    root = namespace()[0]
    args = [node, str(SCRIPT.with_name("store_check.mjs")), store_url, root]
    if indexed(store_backend):
        args.append("semantic")
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return root, json.loads(result.stdout)


def test_the_js_store_client(seen: tuple[str, dict[str, Any]]) -> None:
    root, out = seen
    item = out["item"]
    assert (item["namespace"], item["key"], item["value"]) == ([root, "docs"], "a", {"text": "cats chase mice", "n": 1})
    assert item["createdAt"] == item["created_at"]
    assert out["missing"] is None
    assert sorted(i["key"] for i in out["all"]["items"]) == ["a", "b", "c"]
    assert sorted(i["key"] for i in out["filtered"]["items"]) == ["b", "c"]
    assert len(out["page"]["items"]) == 1
    assert out["namespaces"] == {"namespaces": [[root, "docs"], [root, "notes"]]}
    assert out["cut"] == {"namespaces": [[root]]}
    if "semantic" in out:
        # "c" was put with index: false.
        assert [i["key"] for i in out["semantic"]["items"]] == ["a", "b"]
    assert out["deleted"] is None
    assert out["emptyNamespace"] == {"status": 400}
    assert out["remembered"]["recalled"] == ["from js"]
