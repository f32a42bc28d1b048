"""`--workers N`: N gateway processes serving the same gRPC and HTTP ports (SO_REUSEPORT, the
kernel spreads connections over them), on the shared Postgres + Redis backends, under one
supervisor process.

The supervisor forks the workers before anything of gRPC exists in it (grpc's own advice for
multiprocessing), holds the ports bound meanwhile so that no other program takes them, prints
one ready line once every worker is ready, forwards SIGTERM and SIGINT to them (each drains as
a single gateway does), and starts a worker again when one dies while serving.

The workers keep their Prometheus metrics in files of one directory (prometheus-client's
multiprocess mode: `PROMETHEUS_MULTIPROC_DIR`, a fresh temporary one unless it is set), so that
whichever worker answers a scrape of /metrics reports all of them.
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from gateway.shared.settings import Settings
from gateway.shared.util import cannot_listen

logger = logging.getLogger("gateway.workers")

# As gateway.process.metrics names it; that module imports prometheus-client, which reads the variable
# once, when imported: the supervisor sets it first.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# A worker that dies sooner than this after its start is not started again (a crash loop).
_MIN_LIFETIME = 5.0


def _hold(what: str, host: str, port: int, option: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise cannot_listen(what, host, port, option, exc) from None
    return sock


def _metrics_dir() -> str | None:
    """The workers' metrics directory, emptied; returns it if it is ours to remove."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        # Files of an earlier run would add their counts to this one's.
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        return None
    made = tempfile.mkdtemp(prefix="langgraph-gateway-metrics-")
    os.environ[MULTIPROC_ENV] = made
    return made


class Supervisor:
    def __init__(self, settings: Settings, run_worker: Callable[[Settings, int], int]) -> None:
        """`run_worker(settings, ready_fd)` serves as one worker, writes its ready line to
        `ready_fd`, and returns its exit code."""
        self.run_worker = run_worker
        # The ports are chosen here (0: a free one), held, and given to every worker.
        self._held = [_hold("gRPC", settings.host, settings.grpc_port, "--grpc-port")]
        grpc_port = self._held[0].getsockname()[1]
        http_port, metrics_port = settings.http_port, settings.metrics_port
        if http_port >= 0:
            self._held.append(_hold("HTTP", settings.host, http_port, "--http-port"))
            http_port = self._held[-1].getsockname()[1]
        if metrics_port >= 0:
            self._held.append(_hold("HTTP", settings.host, metrics_port, "--metrics-port"))
            metrics_port = self._held[-1].getsockname()[1]
        self.settings = replace(
            settings, grpc_port=grpc_port, http_port=http_port, metrics_port=metrics_port, workers=1
        )
        # Set before any worker exists, and before prometheus-client is imported anywhere.
        self._own_metrics_dir = _metrics_dir()
        self.count = settings.workers
        self.children: dict[int, float] = {}
        self._stopping = False

    def _fork(self, ready_fd: int) -> int:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _die_with_parent()
                for sock in self._held:
                    sock.close()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                code = self.run_worker(self.settings, ready_fd)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
                if exc.code is not None and not isinstance(exc.code, int):
                    print(exc.code, file=sys.stderr)
            except BaseException:
                logger.exception("a worker failed")
            finally:
                os._exit(code)
        self.children[pid] = time.monotonic()
        return pid

    def _stop(self, signum: int, frame: object) -> None:
        self._stopping = True
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def run(self) -> int:
        try:
            return self._run()
        finally:
            if self._own_metrics_dir is not None:
                shutil.rmtree(self._own_metrics_dir, ignore_errors=True)

    def _run(self) -> int:
        read_fd, write_fd = os.pipe()
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for _ in range(self.count):
            self._fork(write_fd)
        ready = 0
        buffer = b""
        while ready < self.count and not self._stopping:
            readable, _, _ = select.select([read_fd], [], [], 0.5)
            if readable:
                buffer += os.read(read_fd, 4096)
                ready = buffer.count(b"\n")
            if self._reap() and ready < self.count:
                self._stop(signal.SIGTERM, None)
                self._wait_all()
                return 1
        if not self._stopping:
            s = self.settings
            line = {
                "event": "ready",
                "grpc_port": s.grpc_port,
                "http_port": s.http_port,
                "workers": self.count,
                "tls": bool(s.tls_cert_file),
            }
            if s.metrics_port >= 0:
                line["metrics_port"] = s.metrics_port
            print(json.dumps(line), flush=True)
            logger.info(
                "%d workers serving gRPC on %s:%s, HTTP on %s:%s", self.count, s.host, s.grpc_port, s.host, s.http_port
            )
        while self.children:
            if not self._stopping:
                for pid, started in self._reap_with_times():
                    lived = time.monotonic() - started
                    if lived < _MIN_LIFETIME:
                        logger.error("worker %d died %.1f s after it started; not starting it again", pid, lived)
                        continue
                    logger.error("worker %d died; starting another", pid)
                    self._fork(write_fd)
            time.sleep(0.2)
            if self._stopping:
                return self._wait_all()
        return 0

    def _reap(self) -> bool:
        return bool(self._reap_with_times())

    def _reap_with_times(self) -> list[tuple[int, float]]:
        dead = []
        for pid in list(self.children):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                dead.append((pid, self.children.pop(pid)))
                _forget_metrics(pid)
        return dead

    def _wait_all(self) -> int:
        code = 0
        for pid in list(self.children):
            _, status = os.waitpid(pid, 0)
            self.children.pop(pid, None)
            if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM:
                continue  # stopped before it could drain: it had nothing to drain
            code = max(code, os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)
        return code


def _forget_metrics(pid: int) -> None:
    """A dead worker's gauges (runs running, open streams) no longer count; its counters do."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


def _die_with_parent() -> None:
    """A worker gets SIGTERM (and drains) when its supervisor dies, even by SIGKILL."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: workers outlive a killed supervisor
