"""What a new user meets first: each way the start can fail is one `error:` line on stderr, no
traceback, and a non-zero exit."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._server import ROOT, TEST_CONFIG


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def serve(tmp_path: Path, *args: str | Path, config: Path = TEST_CONFIG) -> subprocess.CompletedProcess[str]:
    return run(
        "serve", "--config", config, "--db", tmp_path / "db.sqlite", "--grpc-port", "0", "--http-port", "0", *args
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The error line, once it is checked to be the only thing said."""
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def test_a_missing_config(tmp_path: Path) -> None:
    line = one_line(serve(tmp_path, config=tmp_path / "langgraph.json"))
    assert "config file not found" in line and str(tmp_path / "langgraph.json") in line


def test_a_malformed_config(tmp_path: Path) -> None:
    config = tmp_path / "langgraph.json"
    config.write_text('{"graphs": {"agent": ')
    assert "not valid JSON" in one_line(serve(tmp_path, config=config))


def test_a_graph_that_fails_to_import_is_named_with_its_error(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import no_such_module_here\n")
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"mine": "./broken.py:graph"}}))
    line = one_line(serve(tmp_path, config=config))
    assert "graphs.mine" in line and "ModuleNotFoundError" in line and "no_such_module_here" in line


def test_an_unwritable_database_path(tmp_path: Path) -> None:
    line = one_line(
        run("serve", "--config", TEST_CONFIG, "--db", tmp_path / "missing" / "db.sqlite", "--grpc-port", "0")
    )
    assert "cannot use the database" in line and "writable" in line


def test_a_taken_grpc_port(tmp_path: Path, taken_port: int) -> None:
    line = one_line(serve(tmp_path, "--grpc-port", str(taken_port)))
    assert f"cannot listen for gRPC on 127.0.0.1:{taken_port}" in line and "--grpc-port" in line


def test_a_taken_http_port(tmp_path: Path, taken_port: int) -> None:
    line = one_line(serve(tmp_path, "--http-port", str(taken_port)))
    assert f"cannot listen for HTTP on 127.0.0.1:{taken_port}" in line and "in use" in line and "--http-port" in line


def test_a_taken_port_for_the_bridge(taken_port: int) -> None:
    line = one_line(run("bridge", "--http-port", str(taken_port)))
    assert f"cannot listen for HTTP on 127.0.0.1:{taken_port}" in line


def test_make_run_takes_the_ports() -> None:
    done = subprocess.run(
        ["make", "-n", "run", "GRPC_PORT=50052", "HTTP_PORT=8123"], cwd=ROOT, capture_output=True, text=True
    )
    assert "--grpc-port 50052 --http-port 8123" in done.stdout


@pytest.mark.parametrize("value", ["-1", "1001", "nan"])
def test_a_stream_linger_out_of_range(tmp_path: Path, value: str) -> None:
    line = one_line(serve(tmp_path, "--stream-linger-ms", value))
    assert "--stream-linger-ms must be from 0 to 1000" in line and value in line


@pytest.mark.parametrize("dep", ["./no_such_folder", "../missing/src"])
def test_a_dependency_folder_that_does_not_exist(tmp_path: Path, dep: str) -> None:
    config = tmp_path / "langgraph.json"
    config.write_text(
        json.dumps({"graphs": {"agent": f"{ROOT / 'examples' / 'joke.py'}:graph"}, "dependencies": [dep]})
    )
    line = one_line(serve(tmp_path, config=config))
    assert f"dependencies: {dep!r} does not exist" in line and str((tmp_path / dep).resolve()) in line


def test_an_unreachable_postgres_is_one_line_with_its_cause(tmp_path: Path) -> None:
    # A port that listens but never speaks Postgres would hang the probe: a closed one refuses.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    line = one_line(serve(tmp_path, "--database-url", f"postgresql://postgres@127.0.0.1:{closed}/test"))
    assert f"cannot connect to Postgres at 127.0.0.1:{closed}/test" in line
    # libpq's two lines: the failure, and its hint, which used to arrive with a tab.
    assert "Connection refused" in line and "Is the server running" in line and "\t" not in line
