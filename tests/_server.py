"""Starts the real gateway (`python -m gateway serve`) as a child process on free ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests._zygote import popen

ROOT = Path(__file__).resolve().parent.parent
TEST_CONFIG = ROOT / "tests" / "graphs" / "langgraph.json"
# One system assistant per graph of the test config.
GRAPH_COUNT = len(json.loads(TEST_CONFIG.read_text())["graphs"])


class GatewayProcess:
    def __init__(
        self,
        db: Path,
        *,
        config: Path = TEST_CONFIG,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.extra_args = extra_args
        self.env = env or {}
        self.proc: subprocess.Popen[str] | None = None
        self.grpc_port = 0
        self.http_port = 0
        # The ready line, with every port the gateway serves.
        self.ready: dict[str, int] = {}
        self.stderr_lines: list[str] = []

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 60) -> GatewayProcess:
        cmd = [
            sys.executable, "-m", "gateway", "serve",
            "--config", str(self.config), "--db", str(self.db),
            "--grpc-port", "0", "--http-port", "0", "--grace", "3",
            *self.extra_args,
        ]  # fmt: skip
        self.proc = popen(cmd, cwd=ROOT, env={**os.environ, **self.env})
        drain = threading.Thread(target=self._drain_stderr, daemon=True)
        drain.start()
        ready: dict[str, int] = {}
        done = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if msg.get("event") == "ready":
                    ready.update(msg)
                    break
            done.set()

        threading.Thread(target=read, daemon=True).start()
        if not done.wait(timeout) or not ready:
            self.kill()
            # All it said, up to its end (its stderr closes with it): what the caller reads.
            drain.join(10)
            raise RuntimeError("gateway did not start:\n" + "".join(self.stderr_lines[-40:]))
        self.grpc_port = ready["grpc_port"]
        self.http_port = ready["http_port"]
        self.ready = ready
        return self

    def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
