"""clients/python installed alone into a fresh venv: nothing of the server comes with it, and the
examples of its README run there, unchanged but for the address, against a real gateway."""

from __future__ import annotations

import re
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._server import ROOT, GatewayProcess

CLIENT = ROOT / "clients" / "python"
SERVER_DISTRIBUTIONS = ("langgraph", "langgraph-checkpoint", "starlette", "uvicorn", "psycopg", "redis")


@pytest.fixture(scope="module")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("client-venv")
    venv.create(folder / "venv", with_pip=True)
    python = folder / "venv" / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(CLIENT)],
        check=True,
        timeout=600,
    )
    yield python


def readme_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (CLIENT / "README.md").read_text(), flags=re.S)


def test_the_venv_has_nothing_of_the_server(client_python: Path) -> None:
    check = (
        "import importlib.metadata as m, json, sys\n"
        "found = []\n"
        f"for name in {SERVER_DISTRIBUTIONS!r}:\n"
        "    try:\n"
        "        m.distribution(name)\n"
        "        found.append(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        pass\n"
        "import langgraph.gateway.client, langgraph.gateway.v1.runs_pb2\n"
        "print(json.dumps(found))\n"
    )
    out = subprocess.run([client_python, "-c", check], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout
    assert client_python.resolve() != Path(sys.executable).resolve()


@pytest.mark.parametrize("index", range(len(readme_examples())))
def test_the_readme_examples_run(client_python: Path, gateway: GatewayProcess, index: int, tmp_path: Path) -> None:
    example = readme_examples()[index]
    assert "localhost:50051" in example
    script = tmp_path / "example.py"
    script.write_text(example.replace("localhost:50051", gateway.grpc_target))
    # From a folder of its own: nothing of the repository on its path.
    out = subprocess.run([client_python, script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "values" in out.stdout or "updates" in out.stdout, out.stdout
