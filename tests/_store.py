"""Gateways serving tests/graphs/store (the store's graphs, a factory of each form, a semantic
index and TTLs), on each backend, and the bridge in front of them; test modules import the
fixtures they use.

The config is written out with absolute paths (the reference server resolves paths against its
working directory). Semantic search on Postgres needs pgvector: where the server lacks it, the
Postgres gateway serves the config without its index, and the tests of semantic search check
what it serves then (the same items, unranked; the index refused at start by name)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests._backends import POSTGRES
from tests._server import ROOT, GatewayProcess
from tests.conftest import BACKENDS, backend_args
from tests.http._bridge import BridgeProcess

STORE_GRAPHS = ROOT / "tests" / "graphs" / "store"
CONFIG = STORE_GRAPHS / "langgraph.json"
AUTH_CONFIG = STORE_GRAPHS / "auth.json"


def has_pgvector() -> bool:
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone() is not None


def _absolute(ref: str) -> str:
    path, _, attribute = ref.rpartition(":")
    return f"{(STORE_GRAPHS / path).resolve()}:{attribute}"


def write_config(folder: Path, *, auth: bool = False, index: bool = True, **store: Any) -> Path:
    """The store test config, with absolute paths, written into `folder`; `index=False` leaves
    out the semantic index, `store` replaces keys of its `store` section."""
    config = json.loads((AUTH_CONFIG if auth else CONFIG).read_text())
    config["dependencies"] = [str(STORE_GRAPHS)]
    config["graphs"] = {name: _absolute(ref) for name, ref in config["graphs"].items()}
    config["store"]["index"]["embed"] = _absolute(config["store"]["index"]["embed"])
    if not index:
        del config["store"]["index"]
    config["store"].update(store)
    if auth:
        config["auth"]["path"] = _absolute(config["auth"]["path"])
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "langgraph.json"
    out.write_text(json.dumps(config, indent=2))
    return out


def indexed(backend: str) -> bool:
    """Whether the store of a gateway on `backend` has the semantic index."""
    return backend == "sqlite" or has_pgvector()


def namespace() -> list[str]:
    """A namespace of the test's own, on a gateway that other tests share."""
    return [f"t{uuid.uuid4().hex[:12]}"]


@pytest.fixture(scope="session", params=BACKENDS)
def store_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def store_gateway(store_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway serving the store test config, on each backend."""
    folder = tmp_path_factory.mktemp("store")
    config = write_config(folder, index=indexed(store_backend))
    with backend_args(store_backend) as args:
        proc = GatewayProcess(folder / "gateway.sqlite", config=config, extra_args=args).start()
        yield proc
        proc.kill()


@pytest.fixture(scope="session")
def store_bridge(store_gateway: GatewayProcess) -> Iterator[BridgeProcess]:
    bridge = BridgeProcess(store_gateway.grpc_target).start()
    yield bridge
    bridge.kill()


@pytest.fixture(params=["gateway", "bridge"])
def store_url(request: pytest.FixtureRequest, store_gateway: GatewayProcess) -> str:
    """The store gateway's HTTP API, served by the gateway itself and by the bridge process."""
    if request.param == "gateway":
        return store_gateway.http_url
    bridge: BridgeProcess = request.getfixturevalue("store_bridge")
    return bridge.http_url
