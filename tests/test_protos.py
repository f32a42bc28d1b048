"""The v1 API's compatibility guard: `buf breaking` against the committed baseline image fails
on a change that would break a v1 client, in any copy of the protos."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUF = ROOT / "node_modules" / ".bin" / "buf"
BASELINE = ROOT / "protos" / "baseline" / "v1.binpb"
RUNS_PROTO = Path("protos/langgraph/gateway/v1/runs.proto")


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A copy of the protos and buf.yaml, as a clone would have them."""
    assert BUF.exists(), "node_modules/.bin/buf is missing: run `npm install` (make install does)"
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    return tmp_path


def breaking(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), "breaking", "--against", str(BASELINE)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def edit(folder: Path, old: str, new: str) -> None:
    path = folder / RUNS_PROTO
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def test_the_protos_as_committed_are_compatible_with_the_baseline(scratch: Path) -> None:
    result = breaking(scratch)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_renumbered_field_fails(scratch: Path) -> None:
    edit(scratch, "  string thread_id = 2;\n  // The graph's input", "  string thread_id = 42;\n  // The graph's input")
    result = breaking(scratch)
    assert result.returncode != 0
    assert re.search(r"CreateRunRequest", result.stdout), result.stdout
    assert "thread_id" in result.stdout or '"2"' in result.stdout, result.stdout


def test_a_removed_rpc_fails(scratch: Path) -> None:
    path = scratch / RUNS_PROTO
    text = path.read_text()
    kept = re.sub(r"\n[^\n]*rpc DeleteRun\(DeleteRunRequest\) returns \(DeleteRunResponse\);", "", text)
    assert kept != text
    path.write_text(kept)
    result = breaking(scratch)
    assert result.returncode != 0
    assert "DeleteRun" in result.stdout, result.stdout


def test_an_added_field_passes(scratch: Path) -> None:
    edit(
        scratch,
        "  bool keep_thread = 18;\n",
        "  bool keep_thread = 18;\n  // A field added after v1.\n  string added_later = 99;\n",
    )
    result = breaking(scratch)
    assert result.returncode == 0, result.stdout + result.stderr
