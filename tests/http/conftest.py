from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests._langgraph_dev import absolute_config, langgraph_dev
from tests._server import TEST_CONFIG, GatewayProcess
from tests.conformance import JOBS


@pytest.fixture
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.http_url, timeout=30) as client:
        yield client


@pytest.fixture
def new_thread(http: httpx.Client) -> Callable[..., str]:
    def create(**body: object) -> str:
        response = http.post("/threads", json=body)
        response.raise_for_status()
        return str(response.json()["thread_id"])

    return create


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The reference server (`langgraph dev`) on the test graphs, for the tests that diff our
    answers against its own: one for the session (the tests that use it share one pytest-xdist
    worker). Runs on different threads may run at once, so that cases run side by side."""
    scratch = tmp_path_factory.mktemp("reference")
    with langgraph_dev(absolute_config(TEST_CONFIG, scratch), scratch, jobs=JOBS) as url:
        yield url
