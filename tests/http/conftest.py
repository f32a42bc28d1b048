from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests._server import GatewayProcess


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
