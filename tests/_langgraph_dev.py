"""The reference server: `langgraph dev` (the LangGraph Agent Server, langgraph-cli[inmem]),
installed into .venv-ref on first use and started on a free port, for the tests that diff our
answers against its own."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

from tests._locks import file_lock
from tests._server import ROOT

REF_VENV = ROOT / ".venv-ref"


def _ref_packages() -> list[str]:
    # The reference runs the same LangGraph as the gateway, so that differences are the servers'.
    # The contract was written against langgraph-api 0.16.7 on langgraph-runtime-inmem 0.36.7.
    return [
        "langgraph-cli[inmem]",
        "langgraph-api==0.16.7",
        "langgraph-runtime-inmem==0.36.7",
        f"langgraph=={importlib.metadata.version('langgraph')}",
        f"langchain-core=={importlib.metadata.version('langchain-core')}",
    ]


def ensure_ref_venv() -> Path:
    """The `langgraph` command of .venv-ref, installing it first if need be: once, whichever of
    the suite's processes (pytest-xdist's workers, or runs side by side) asks first, the others
    waiting for it."""
    langgraph = REF_VENV / "bin" / "langgraph"
    if langgraph.exists():
        return langgraph
    with file_lock(REF_VENV):
        if not langgraph.exists():
            subprocess.run([sys.executable, "-m", "venv", str(REF_VENV)], check=True, timeout=300)
            subprocess.run(
                [str(REF_VENV / "bin" / "pip"), "install", "--quiet", *_ref_packages()], check=True, timeout=1200
            )
    return langgraph


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def absolute_config(config: Path, folder: Path) -> Path:
    """`config` rewritten into `folder` with absolute paths: `langgraph dev` resolves graph paths
    against its working directory (the gateway, against the config's), and it writes its state
    there, so it runs from a scratch folder on the very same graph files."""
    data = json.loads(config.read_text())
    base = config.parent
    data["dependencies"] = [str((base / dep).resolve()) for dep in data.get("dependencies", [])]
    graphs = {}
    for graph_id, spec in data["graphs"].items():
        path, _, attribute = spec.rpartition(":")
        graphs[graph_id] = f"{(base / path).resolve()}:{attribute}"
    data["graphs"] = graphs
    out = folder / "langgraph.json"
    out.write_text(json.dumps(data, indent=2))
    return out


def _holds_listener(pid: int, port: int) -> bool:
    """Whether the process `pid`, or a child of it, holds the socket listening on `port`: the
    free port picked may have been taken by another server before `langgraph dev` bound it."""
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                sockets.add(f"socket:[{fields[9]}]")
    family = {pid}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                family.add(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    for member in family:
        try:
            if any(os.readlink(fd) in sockets for fd in Path(f"/proc/{member}/fd").iterdir()):
                return True
        except OSError:
            continue
    return False


# `langgraph dev` serves on another port, saying so, when the one it is given is taken: the free
# port picked may have been bound by another server (another test's) before it started.
_MOVED = re.compile(r"Port \d+ is already in use, using port (\d+) instead")


def _start(cmd: list[str], folder: Path, log: IO[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """`langgraph dev` on a free port, and its URL once `/ok` answers from it."""
    port = free_port()
    log_path = folder / "langgraph-dev.log"
    proc = subprocess.Popen([*cmd, "--port", str(port)], cwd=folder, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, log_path.read_text()[-3000:]
        if moved := _MOVED.search(log_path.read_text()):
            port = int(moved[1])
        url = f"http://127.0.0.1:{port}"
        try:
            if httpx.get(f"{url}/ok", timeout=2).status_code == 200 and _holds_listener(proc.pid, port):
                return proc, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            raise AssertionError("langgraph dev did not start in 120 s")
        time.sleep(0.25)


@contextmanager
def langgraph_dev(config: Path, folder: Path, *, jobs: int | None = None) -> Iterator[str]:
    """Serves `config` (its paths absolute) with `langgraph dev` from `folder`, and yields its
    URL once `/ok` answers. `jobs`: runs it may execute at once (dev's default is one)."""
    langgraph = ensure_ref_venv()
    log_path = folder / "langgraph-dev.log"
    cmd = [str(langgraph), "dev", "--config", str(config), "--no-browser", "--no-reload"]
    if jobs is not None:
        cmd += ["--n-jobs-per-worker", str(jobs)]
    env = {**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false"}
    with log_path.open("w") as log:
        proc, url = _start(cmd, folder, log, env)
        try:
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
