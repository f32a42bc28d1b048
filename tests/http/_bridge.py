"""Starts `python -m gateway bridge` as a child process in front of a running gateway."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

from tests._server import ROOT
from tests._zygote import popen


class BridgeProcess:
    def __init__(
        self, target: str, *, api_key: str | None = None, config: str | None = None, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.target = target
        self.api_key = api_key
        self.config = config
        self.extra_args = extra_args
        self.proc: subprocess.Popen[str] | None = None
        self.http_port = 0
        # The ready line, with every port the bridge serves.
        self.ready: dict[str, int] = {}
        self.stderr_lines: list[str] = []

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 60) -> BridgeProcess:
        cmd = [sys.executable, "-m", "gateway", "bridge", "--target", self.target, "--http-port", "0"]
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        if self.config:
            cmd += ["--config", self.config]
        cmd += self.extra_args
        self.proc = popen(cmd, cwd=ROOT)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        stderr = self.proc.stderr
        drain = threading.Thread(target=lambda: self.stderr_lines.extend(stderr), daemon=True)
        drain.start()
        ready: dict[str, int] = {}

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith("{") and json.loads(line).get("event") == "ready":
                    ready.update(json.loads(line))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if not ready:
            self.kill()
            drain.join(10)  # all it said, up to its end
            raise RuntimeError("bridge did not start:\n" + "".join(self.stderr_lines[-40:]))
        self.http_port = ready["http_port"]
        self.ready = ready
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
