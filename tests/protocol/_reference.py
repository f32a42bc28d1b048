"""The reference server, `langgraph dev` from .venv-ref, serving tests/graphs/protocol.json from a
scratch folder (it resolves graph paths against its working directory)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.http.test_conformance import _ensure_ref_venv, _free_port
from tests.protocol.conftest import PROTOCOL_CONFIG


def _absolute_config(folder: Path) -> Path:
    config = json.loads(PROTOCOL_CONFIG.read_text())
    base = PROTOCOL_CONFIG.parent
    config["dependencies"] = [str((base / dep).resolve()) for dep in config["dependencies"]]
    config["graphs"] = {
        graph_id: f"{(base / spec.rpartition(':')[0]).resolve()}:{spec.rpartition(':')[2]}"
        for graph_id, spec in config["graphs"].items()
    }
    out = folder / "langgraph.json"
    out.write_text(json.dumps(config, indent=2))
    return out


@contextmanager
def reference_server(folder: Path) -> Iterator[str]:
    langgraph = _ensure_ref_venv()
    config = _absolute_config(folder)
    port = _free_port()
    log = (folder / "langgraph-dev.log").open("w")
    env = {**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false"}
    cmd = [str(langgraph), "dev", "--config", str(config), "--port", str(port), "--no-browser", "--no-reload"]
    proc = subprocess.Popen(
        [*cmd, "--n-jobs-per-worker", "4"], cwd=folder, stdout=log, stderr=subprocess.STDOUT, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (folder / "langgraph-dev.log").read_text()[-3000:]
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
