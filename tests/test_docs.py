"""Every example of docs/ runs: each page's fenced `sh`, `python` and `ts` blocks, in order, in
one scratch folder, against a real gateway serving examples/langgraph.json (what `make run`
serves), with `localhost:50051` and `localhost:2024` pointed at its ports. A block that cannot
run here is marked `<!-- not run: why -->` on the line above it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._server import ROOT, GatewayProcess

DOCS = sorted((ROOT / "docs").glob("*.md"))
TS_CLIENT = ROOT / "clients" / "typescript"
# What an example's output must contain: `# output includes: ...` (`// ...` in TypeScript).
_EXPECTED = re.compile(r"^(?:#|//) output includes: (.*)$", re.M)
_BLOCK = re.compile(r"(<!-- not run: [^>]*-->\s*\n)?```(sh|python|ts)\n(.*?)```", re.S)


@dataclass
class Block:
    language: str
    code: str
    line: int


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    return [
        Block(m.group(2), m.group(3), text.count("\n", 0, m.start(2)) + 1)
        for m in _BLOCK.finditer(text)
        if not m.group(1)
    ]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(
        tmp_path_factory.mktemp("docs") / "gateway.sqlite", config=ROOT / "examples" / "langgraph.json"
    ).start()
    yield proc
    proc.kill()


@pytest.fixture(scope="module")
def ts_client() -> Path:
    """The TypeScript client, built: a `ts` block runs as a module inside its package, where
    `@langgraph-gateway/client` names the package itself."""
    subprocess.run(["npm", "run", "--silent", "build"], cwd=TS_CLIENT, check=True, timeout=300)
    return TS_CLIENT


def _run(block: Block, served: GatewayProcess, folder: Path, request: pytest.FixtureRequest) -> None:
    code = block.code.replace("localhost:50051", served.grpc_target).replace("localhost:2024", served.http_url[7:])
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    if block.language == "sh":
        command = ["bash", "-euo", "pipefail", "-c", code]
    elif block.language == "python":
        command = [sys.executable, "-c", code]
    else:
        package: Path = request.getfixturevalue("ts_client")
        script = package / "dist" / f"docs-example-{block.line}.mjs"
        script.write_text(code)
        command = ["node", str(script)]
    out = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"line {block.line} ({block.language}) failed:\n{out.stdout}\n{out.stderr}"
    for expected in _EXPECTED.findall(block.code):
        assert expected.strip() in out.stdout, f"line {block.line}: {expected.strip()!r} not in:\n{out.stdout}"


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_the_examples_of_each_page_run(
    page: Path, served: GatewayProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    found = blocks(page)
    if not found:
        pytest.skip(f"{page.name} has no examples")
    for block in found:
        _run(block, served, tmp_path, request)


def test_node_and_npm_are_here() -> None:
    assert shutil.which("node") and shutil.which("npm"), "the docs' TypeScript examples need Node.js"
