"""`--log-format json`: one JSON object per line, with the run's and thread's ids on every line
about a run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests._server import GatewayProcess


def test_json_logs_carry_the_runs_ids(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path / "db.sqlite", extra_args=("--log-format", "json")).start()
    try:
        with httpx.Client(base_url=proc.http_url, timeout=30) as http:
            thread_id = http.post("/threads", json={}).json()["thread_id"]
            answer = http.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "failing", "input": {}})
            assert "__error__" in answer.json()
            run_id = http.get(f"/threads/{thread_id}/runs").json()[0]["run_id"]
        time.sleep(0.2)
    finally:
        proc.kill()
    lines = [json.loads(line) for line in proc.stderr_lines if line.strip()]
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    failed = [line for line in lines if "failed" in line["message"] and line["logger"] == "gateway.runs"]
    assert failed, lines
    assert failed[0]["run_id"] == run_id and failed[0]["thread_id"] == thread_id
    assert "exception" in failed[0]
