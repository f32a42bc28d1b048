"""Every example of README.md and docs/ runs: each page's fenced `sh`, `python` and `ts` blocks,
in order, in one scratch folder, against a real gateway serving examples/langgraph.json (what
`make run` serves), with `localhost:50051` and `localhost:2024` pointed at its ports. A block
that cannot run here is marked `<!-- not run: why -->` on the line above it. Output samples are
fenced as `text`, `json` or `console`, and every link between the pages leads somewhere."""

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

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TS_CLIENT = ROOT / "clients" / "typescript"
# What an example's output must contain: `# output includes: ...` (`// ...` in TypeScript).
_EXPECTED = re.compile(r"^(?:#|//) output includes: (.*)$", re.M)
_BLOCK = re.compile(r"(<!-- not run: [^>]*-->\s*\n)?```(sh|python|ts)\n(.*?)```", re.S)
# Fences whose code would look like an example but that the runner would not run.
_UNRUN = {"bash", "shell", "zsh", "py", "python3", "js", "javascript", "typescript", "mjs"}
_FENCE = re.compile(r"^```(\S*)$", re.M)
_LINK = re.compile(r"\]\(([^)\s]+)\)")
# The pages whose links are checked: these and what they link to.
LINKED = [*DOCS, ROOT / "bench" / "HISTORY.md", ROOT / "clients" / "python" / "README.md"]


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


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings."""
    found: set[str] = set()
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for heading in re.findall(r"^#{1,6} (.*)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in found:
            n += 1
            anchor = f"{slug}-{n}"
        found.add(anchor)
    return found


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_every_example_is_fenced_as_one_that_runs(page: Path) -> None:
    fences = _FENCE.findall(page.read_text())[::2]  # opening fences only
    unrun = [language for language in fences if language in _UNRUN]
    assert not unrun, f"{page.name}: fence these as sh, python or ts (or text for output): {unrun}"


@pytest.mark.parametrize("page", LINKED, ids=[str(p.relative_to(ROOT)) for p in LINKED])
def test_links_between_pages_lead_somewhere(page: Path) -> None:
    broken = []
    for target in _LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: links to nothing: {broken}"
