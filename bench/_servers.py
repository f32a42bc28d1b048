"""The two servers under test, each a child process on a free port serving bench/langgraph.json
from the same scratch folder: our gateway, and the reference `langgraph dev` in its own venv."""

from __future__ import annotations

import json
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
REF_VENV = Path(os.environ.get("BENCH_REF_VENV", ROOT / ".venv-ref"))
REF_REQUIREMENT = "langgraph-cli[inmem]"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_REF_URL = re.compile(r"API:\s*http://[\w.]+:(\d+)")


def scratch_copy(folder: Path) -> Path:
    """The graphs and their config in `folder`: the reference resolves graph paths from its cwd."""
    for name in ("graphs.py", "langgraph.json"):
        shutil.copy(BENCH / name, folder / name)
    return folder / "langgraph.json"


def revision() -> str | None:
    """The commit measured (+dirty if gateway/ has changes), or BENCH_REVISION outside a git
    checkout (a tree exported with `git archive`, measured while others edit the checkout)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "gateway"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return os.environ.get("BENCH_REVISION")
    if commit.returncode != 0:
        return os.environ.get("BENCH_REVISION")
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]
    return busy / os.sysconf("SC_CLK_TCK")


def raise_fd_limit() -> None:
    # A thousand open streams need a thousand sockets on each side; children inherit the limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 8192:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, hard), hard))


def ensure_reference_venv(*, create: bool) -> Path | None:
    """The reference's `langgraph` executable, installing it into .venv-ref on first use."""
    exe = REF_VENV / "bin" / "langgraph"
    if exe.exists():
        return exe
    if not create:
        return None
    print(f"creating {REF_VENV} with {REF_REQUIREMENT} (once)", file=sys.stderr, flush=True)
    subprocess.run([shutil.which("python3") or sys.executable, "-m", "venv", str(REF_VENV)], check=True)
    subprocess.run([str(REF_VENV / "bin" / "pip"), "install", "--quiet", REF_REQUIREMENT], check=True)
    return exe


def _process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                # The command name may hold spaces and parentheses: the ppid follows the last ")".
                ppid = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, ()))
    return tree


class ServerProcess:
    """A server child process: its address, and its RSS, threads and CPU time (with children)."""

    name = "server"

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _spawn(self, cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **env},
            start_new_session=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(_ANSI.sub("", line))
            del self.output[:-200]

    def _wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.output):
                if m := pattern.search(line):
                    return m
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n" + "".join(self.output[-40:]))

    def stats(self) -> dict[str, float]:
        """RSS in bytes, thread count and CPU seconds, summed over the process and its children."""
        rss = threads = 0
        cpu = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in _process_tree(self.pid):
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            rss += int(line.split()[1]) * 1024
                        elif line.startswith("Threads:"):
                            threads += int(line.split()[1])
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
                cpu += (int(fields[11]) + int(fields[12])) / tick
            except (OSError, ValueError, IndexError):
                continue
        return {"rss": rss, "threads": threads, "cpu": cpu}

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL, as a lost machine or the OOM killer would: nothing is handed back."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# More options for every gateway the benchmark starts, to compare a setting's values run by run
# (BENCH_GATEWAY_ARGS="--stream-linger-ms 0").
EXTRA_ARGS = tuple(shlex.split(os.environ.get("BENCH_GATEWAY_ARGS", "")))


class GatewayServer(ServerProcess):
    """`python -m gateway serve` on free gRPC and HTTP ports, with its sqlite file in scratch
    unless `args` name other backends (bench._backends.shared_backends)."""

    name = "gateway"

    def __init__(self, config: Path, *, http: bool = True, args: Sequence[str] = ()) -> None:
        super().__init__()
        self.config = config
        self.http = http
        self.args = tuple(args)
        self.grpc_port = 0
        self.http_port = -1

    def start(self, timeout: float = 60) -> GatewayServer:
        cmd = [
            sys.executable, "-m", "gateway", "serve",
            "--config", str(self.config), "--db", str(self.config.parent / "gateway.sqlite"),
            "--grpc-port", "0", "--http-port", "0" if self.http else "-1",
            "--grace", "3", "--log-level", "warning", *self.args, *EXTRA_ARGS,
        ]  # fmt: skip
        self._spawn(cmd, ROOT, {})
        ready = json.loads(self._wait_for(re.compile(r'^\{"event": "ready".*\}$'), timeout).group(0))
        self.grpc_port = ready["grpc_port"]
        self.http_port = ready.get("http_port", -1)
        return self


class Replicas(ServerProcess):
    """Gateway processes, each on its own ports (replicas of one deployment, one database and
    one key prefix; or independent sqlite gateways): the stats are their sums, and they stop
    together."""

    name = "replicas"

    def __init__(self, servers: Sequence[GatewayServer]) -> None:
        super().__init__()
        self.servers = list(servers)

    @property
    def pid(self) -> int:
        return self.servers[0].pid

    def stats(self) -> dict[str, float]:
        stats = [server.stats() for server in self.servers]
        return {key: sum(s[key] for s in stats) for key in ("rss", "threads", "cpu")}

    def stop(self) -> None:
        for server in self.servers:
            if server.proc is not None and server.proc.poll() is None:
                server.proc.send_signal(signal.SIGTERM)
        for server in self.servers:
            server.stop()


class ReferenceServer(ServerProcess):
    """`langgraph dev` (langgraph-api, in-memory runtime) from .venv-ref, run from scratch."""

    name = "reference"

    def __init__(self, exe: Path, config: Path, *, jobs: int) -> None:
        super().__init__()
        self.exe = exe
        self.config = config
        self.jobs = jobs
        self.port = 0

    def start(self, timeout: float = 120) -> ReferenceServer:
        cmd = [
            str(self.exe), "dev", "--config", self.config.name, "--port", str(free_port()),
            "--no-browser", "--no-reload", "--n-jobs-per-worker", str(self.jobs),
            # Its per-request access log is not what is measured; ours logs at warning too.
            "--server-log-level", "WARNING",
        ]  # fmt: skip
        env = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false", "LOG_LEVEL": "WARNING"}
        self._spawn(cmd, self.config.parent, env)
        # It moves to another port when the one asked for is taken, and says where.
        self.port = int(self._wait_for(_REF_URL, timeout).group(1))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/ok", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("reference did not answer /ok:\n" + "".join(self.output[-40:]))
