"""The HTTP server inside the gateway process: SIGTERM drains runs, then ends open streams."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx

from tests._server import GatewayProcess
from tests.http._sse import Event, iter_events


def test_sigterm_ends_open_streams_cleanly_and_the_process_exits(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path / "gateway.sqlite").start()
    try:
        with httpx.Client(base_url=proc.http_url, timeout=60) as client:
            thread_id = client.post("/threads", json={}).json()["thread_id"]
            run = {"assistant_id": "slow", "input": {"n": 10, "delay": 0.1}, "stream_mode": "custom"}
            client.post(f"/threads/{thread_id}/runs", json=run)
            seen: list[Event] = []
            ended = threading.Event()

            def follow() -> None:
                # A thread stream never ends on its own: only the server's stop ends it.
                with client.stream("GET", f"/threads/{thread_id}/stream") as response:
                    for event in iter_events(response):
                        seen.append(event)
                        if event.event == "custom" and len(seen) == 2:
                            assert proc.proc is not None
                            proc.proc.send_signal(signal.SIGTERM)
                ended.set()

            reader = threading.Thread(target=follow, daemon=True)
            reader.start()
            assert ended.wait(60), "the thread stream did not end after SIGTERM"
        assert proc.proc is not None and proc.proc.wait(60) == 0
    finally:
        proc.kill()
    # The live run was let finish (draining) before the stream was closed.
    assert [e.data["tick"] for e in seen if e.event == "custom"][-1] == 9
    assert seen[-1].data.get("status") == "run_done"
