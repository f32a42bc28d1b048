"""The SSE streams of the bridge against the LangGraph Agent Server's own (`langgraph dev`),
event by event, with the shared differential checker (../shared/conformance/sse_diff.py): its
cases, and ours in cases_extra.json (more stream modes, subgraphs, interrupts, errors)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._server import ROOT, GatewayProcess

SHARED = ROOT.parent / "shared" / "conformance"
REF_VENV = ROOT / ".venv-ref"
EXTRA_CASES = Path(__file__).parent / "cases_extra.json"
_CHUNKS = 3


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


def _ensure_ref_venv() -> Path:
    langgraph = REF_VENV / "bin" / "langgraph"
    if not langgraph.exists():
        subprocess.run([sys.executable, "-m", "venv", str(REF_VENV)], check=True, timeout=300)
        subprocess.run(
            [str(REF_VENV / "bin" / "pip"), "install", "--quiet", *_ref_packages()], check=True, timeout=1200
        )
    return langgraph


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not SHARED.is_dir():
        pytest.skip(f"the shared conformance folder {SHARED} is missing")
    langgraph = _ensure_ref_venv()
    scratch = tmp_path_factory.mktemp("reference")
    # `langgraph dev` resolves the config's graph paths against its working directory.
    (scratch / "graphs.py").symlink_to(SHARED / "graphs.py")
    port = _free_port()
    log = (scratch / "langgraph-dev.log").open("w")
    env = {**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false"}
    proc = subprocess.Popen(
        [str(langgraph), "dev", "--config", str(SHARED / "langgraph.json"), "--port", str(port)]
        # Runs on different threads may run at once (dev's default is one at a time), so the
        # cases can be checked in parallel.
        + ["--no-browser", "--no-reload", "--n-jobs-per-worker", str(_CHUNKS + 1)],
        cwd=scratch,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (scratch / "langgraph-dev.log").read_text()[-3000:]
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


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not SHARED.is_dir():
        pytest.skip(f"the shared conformance folder {SHARED} is missing")
    db = tmp_path_factory.mktemp("candidate") / "gateway.sqlite"
    proc = GatewayProcess(db, config=SHARED / "langgraph.json").start()
    yield proc.http_url
    proc.kill()


@pytest.fixture(scope="module")
def diffs(reference: str, candidate: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """sse_diff's output for the shared cases and for each chunk of ours, all run at once:
    the reference takes about a second per run, and each case uses its own thread."""
    folder = tmp_path_factory.mktemp("cases")
    extra = json.loads(EXTRA_CASES.read_text())
    runs: dict[str, list[str]] = {"shared": []}
    for i in range(_CHUNKS):
        chunk = folder / f"extra-{i}.json"
        chunk.write_text(json.dumps(extra[i::_CHUNKS]))
        runs[f"extra-{i}"] = ["--cases", str(chunk)]
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(SHARED / "sse_diff.py"), "--ref", reference, "--cand", candidate, "-v", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, args in runs.items()
    }
    out = {}
    for name, proc in procs.items():
        out[name] = proc.communicate(timeout=600)[0]
        out[name] += f"\n(exit status {proc.returncode})"
    return out


def _matched(output: str) -> int:
    summary = next(line for line in output.splitlines()[::-1] if line.endswith(" differ"))
    matched, _, differ = summary.partition(" matched, ")
    assert differ == "0 differ", output[-6000:]
    assert output.endswith("(exit status 0)"), output[-6000:]
    return int(matched)


def test_shared_cases_match_the_reference(diffs: dict[str, str]) -> None:
    shared = json.loads((SHARED / "cases.json").read_text())
    assert _matched(diffs["shared"]) == len(shared)


def test_extra_cases_match_the_reference(diffs: dict[str, str]) -> None:
    extra = json.loads(EXTRA_CASES.read_text())
    assert sum(_matched(diffs[f"extra-{i}"]) for i in range(_CHUNKS)) == len(extra)
