"""One process owns a sqlite file: a second `serve` on it is refused at once, and the runs are
taken over only once the owner is gone."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests._server import ROOT, TEST_CONFIG, GatewayProcess
from tests.http._sse import iter_events


def _serve_once(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`serve` that is expected to stop at once."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(TEST_CONFIG), "--db", str(db)]
        + ["--grpc-port", "0", "--http-port", "0", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _until_running(http: httpx.Client, thread_id: str, run_id: str) -> None:
    deadline = time.monotonic() + 30
    while http.get(f"/threads/{thread_id}/runs/{run_id}").json()["status"] != "running":
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)


def test_a_second_process_on_a_sqlite_file_is_refused_until_the_owner_is_gone(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    first = GatewayProcess(db).start()
    try:
        assert first.proc is not None
        with httpx.Client(base_url=first.http_url, timeout=30) as http:
            thread_id = http.post("/threads", json={}).json()["thread_id"]
            # Far longer than the test: it is cancelled once taken over.
            body = {"assistant_id": "slow", "input": {"n": 2000, "delay": 0.05}, "stream_mode": "custom"}
            run_id = http.post(f"/threads/{thread_id}/runs", json=body).json()["run_id"]
            _until_running(http, thread_id, run_id)

            second = _serve_once(db)
            assert second.returncode != 0
            errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
            assert len(errors) == 1, second.stderr
            assert str(db) in errors[0] and f"pid {first.proc.pid}" in errors[0], errors
            assert "Traceback" not in second.stderr
            # Several processes on one sqlite file are refused too.
            workers = _serve_once(db, "--workers", "2")
            assert workers.returncode != 0 and "--workers above 1 needs" in workers.stderr
            assert "Traceback" not in workers.stderr

            # The owner's run went on untouched: nobody else took it for a lost one.
            assert http.get(f"/threads/{thread_id}/runs/{run_id}").json()["status"] == "running"
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
    finally:
        first.kill()
    assert not [line for line in first.stderr_lines if "lost its process" in line]

    # The owner is gone: the next process takes its run over.
    third = GatewayProcess(db).start()
    try:
        with httpx.Client(base_url=third.http_url, timeout=60) as http:
            path = f"/threads/{thread_id}/runs/{run_id}"
            with http.stream("GET", f"{path}/stream", headers={"Last-Event-ID": "-1"}) as joined:
                assert joined.status_code == 200
                events = iter_events(joined)
                assert next(events).data == {"run_id": run_id, "attempt": 2}
                assert next(events).data == {"tick": 0}
            assert http.post(f"{path}/cancel?wait=1").status_code == 200
        assert [line for line in third.stderr_lines if f"run {run_id} lost its process" in line]
    finally:
        third.kill()
