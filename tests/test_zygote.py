"""The fork server the tests start gateways from (tests/_zygote.py) imports no more than a real
process of the same command has once it serves: a module imported only there could change what
the forked gateway does (a bridge showing the core's metrics, say)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests._server import ROOT, TEST_CONFIG

# A real `python -m gateway ...` that prints its sys.modules on stderr when a line comes on stdin.
_DUMPING = (
    "import json, runpy, sys, threading\n"
    "def dump():\n"
    "    sys.stdin.readline()\n"
    "    sys.stderr.write(json.dumps(list(sys.modules.copy())) + '\\n')\n"
    "    sys.stderr.flush()\n"
    "threading.Thread(target=dump, daemon=True).start()\n"
    "sys.argv = ['gateway', *sys.argv[1:]]\n"
    "runpy.run_module('gateway', run_name='__main__', alter_sys=True)\n"
)


def _served_modules(args: list[str]) -> set[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _DUMPING, *args, "--log-level", "error"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:
            if '"ready"' in line:
                break
        proc.stdin.write("\n")
        proc.stdin.flush()
        for line in proc.stderr:
            if line.startswith("["):
                return set(json.loads(line))
        raise AssertionError("the gateway printed no modules")
    finally:
        proc.kill()
        proc.wait(10)


def _preloaded(command: str) -> set[str]:
    listed = subprocess.run(
        [sys.executable, "-m", "tests._zygote", "--modules", command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    # Less the fork server's own module.
    return {m for m in json.loads(listed.stdout) if m != "tests" and not m.startswith("tests.")}


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--config", str(TEST_CONFIG), "--grpc-port", "0", "--http-port", "0"],
        ["bridge", "--target", "127.0.0.1:9", "--http-port", "0"],
    ],
    ids=["serve", "bridge"],
)
def test_the_fork_server_imports_nothing_a_real_process_does_not(args: list[str], tmp_path: Path) -> None:
    if args[0] == "serve":
        args = [*args, "--db", str(tmp_path / "db.sqlite")]
    extra = _preloaded(args[0]) - _served_modules(args)
    assert extra == set()
