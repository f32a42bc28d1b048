"""langgraph.json as the gateway reads it: no key ignored silently, and a key that would weaken
security if it were ignored stops the start."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.config.file import load_config
from gateway.config.http import Cors
from gateway.config.loader import ConfigError
from tests._server import GatewayProcess

ROOT = Path(__file__).resolve().parent.parent
AUTH = ROOT / "tests" / "graphs" / "auth"


def write(folder: Path, **sections: Any) -> Path:
    config = {"graphs": {"agent": str(ROOT / "examples" / "joke.py") + ":graph"}, **sections}
    path = folder / "langgraph.json"
    path.write_text(json.dumps(config))
    return path


def test_keys_the_gateway_does_not_use_are_named(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            python_version="3.12",
            store={"ttl": {"default_ttl": 5, "sweep": 1}},
            webhooks={},
            surprise=1,
            http={"mount_prefix": "/api", "configurable_headers": {"includes": ["x-*"]}, "cors": None},
        )
    )
    assert config.ignored == [
        "python_version (build-time)",
        "webhooks (not implemented)",
        "surprise (unknown)",
        "store.ttl.sweep (unknown)",
        "http.mount_prefix (not implemented)",
        "http.configurable_headers (not implemented)",
    ]


def test_auth_and_http_are_loaded(tmp_path: Path) -> None:
    config = load_config(AUTH / "langgraph.json")
    assert config.auth is not None and config.http_app is not None
    assert config.http.cors == Cors(
        allow_origins=("https://app.example",),
        allow_methods=("GET", "POST", "PATCH", "DELETE"),
        allow_headers=("authorization", "content-type"),
        allow_credentials=True,
        expose_headers=("x-custom",),
        max_age=60,
    )
    assert config.ignored == []


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"encryption": {"path": "./enc.py:enc"}}, "unencrypted"),
        ({"auth": {"path": "./auth.ts:auth"}}, "JavaScript"),
        ({"auth": {"disable_studio_auth": True}}, "auth.path is required"),
        ({"auth": {"path": f"{AUTH}/auth.py:nothing"}}, "not a langgraph_sdk Auth"),
        ({"http": {"cors": {"allow_origins": ["*"], "allow_origin": "x"}}}, "http.cors has keys"),
        ({"http": {"cors": {"allow_origins": "*"}}}, "list of strings"),
        ({"http": {"disable_runs": "yes"}}, "true or false"),
        ({"http": {"app": f"{AUTH}/auth.py:auth"}}, "not a Starlette or FastAPI app"),
        ({"http": {"middleware_order": "sometimes"}}, "middleware_order"),
    ],
)
def test_what_would_weaken_security_if_ignored_stops_the_start(
    tmp_path: Path, sections: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, **sections))


def test_the_start_names_what_is_not_used(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        store={"ttl": {"refresh": True}},
        auth={"path": f"{AUTH}/auth.py:auth", "cache": {"ttl_seconds": 5}},
        http={"mount_prefix": "/api"},
    )
    proc = GatewayProcess(tmp_path / "db.sqlite", config=config).start()
    proc.kill()
    deadline = time.monotonic() + 10
    while "serving agent" not in (log := "".join(proc.stderr_lines)) and time.monotonic() < deadline:
        time.sleep(0.05)  # the lines before "ready" may still be on their way from the pipe
    assert (
        "langgraph.json: not used by the gateway: auth.cache (not implemented), store.ttl.refresh (unknown), "
        "http.mount_prefix (not implemented)"
    ) in log
    # The owner-only example covers every action; crons wait for the gateway to serve them.
    assert "no @auth.on handler covers" not in log


def test_a_key_that_would_weaken_security_stops_the_start_with_one_line(tmp_path: Path) -> None:
    config = write(tmp_path, encryption={"path": "./encryption.py:encryption"})
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--db", str(tmp_path / "db.sqlite")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and "unencrypted" in done.stderr


FACTORIES = """
from typing import TYPE_CHECKING
from langgraph_sdk.runtime import ServerRuntime
if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig


def raising(config):
    raise RuntimeError("called at load")


def both(config: "RunnableConfig", runtime: "ServerRuntime"):
    ...


def runtime_first(runtime: ServerRuntime, config):
    ...


def runtime_only(rt: "ServerRuntime[dict]"):
    ...


def two_configs(a, b):
    ...


def three(a, b, c):
    ...
"""


def test_factories_are_classified_at_load_and_not_called(tmp_path: Path) -> None:
    (tmp_path / "factories.py").write_text(FACTORIES)
    graphs = {name: f"./factories.py:{name}" for name in ("raising", "both", "runtime_first", "runtime_only")}
    config = load_config(write(tmp_path, graphs=graphs))
    found = {
        name: (spec.factory.config_param, spec.factory.runtime_param)
        for name, spec in config.graphs.items()
        if spec.factory
    }
    assert found == {
        "raising": ("config", None),
        "both": ("config", "runtime"),
        "runtime_first": ("config", "runtime"),
        "runtime_only": (None, "rt"),
    }


@pytest.mark.parametrize(("name", "message"), [("two_configs", "annotate the runtime"), ("three", "0, 1 or 2")])
def test_a_factory_the_server_cannot_call_stops_the_start(tmp_path: Path, name: str, message: str) -> None:
    (tmp_path / "factories.py").write_text(FACTORIES)
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, graphs={name: f"./factories.py:{name}"}))


def test_dependencies_name_folders_that_exist_or_packages(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "notes.txt").write_text("")
    # Package names are the environment's to provide; folders must be there.
    load_config(write(tmp_path, dependencies=[".", "./src", str(tmp_path / "src"), "langchain-openai"]))
    with pytest.raises(ConfigError, match=r"dependencies: './srcs' does not exist \(.*/srcs\)"):
        load_config(write(tmp_path, dependencies=[".", "./srcs"]))
    with pytest.raises(ConfigError, match=r"dependencies: './notes.txt' is not a folder"):
        load_config(write(tmp_path, dependencies=["./notes.txt"]))
    with pytest.raises(ConfigError, match="'dependencies' must be a list"):
        load_config(write(tmp_path, dependencies=[3]))
