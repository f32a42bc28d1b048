from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._server import ROOT, GatewayProcess
from tests.http._bridge import BridgeProcess

PROTOCOL_CONFIG = ROOT / "tests" / "graphs" / "protocol.json"


@pytest.fixture(scope="session")
def protocol_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway serving the protocol tests' graphs (tests/graphs/protocol.json)."""
    proc = GatewayProcess(tmp_path_factory.mktemp("protocol") / "gateway.sqlite", config=PROTOCOL_CONFIG).start()
    yield proc
    proc.kill()


@pytest.fixture(scope="session")
def protocol_bridge(protocol_gateway: GatewayProcess) -> Iterator[BridgeProcess]:
    """`python -m gateway bridge` in front of it: the protocol from its gRPC sessions."""
    proc = BridgeProcess(protocol_gateway.grpc_target).start()
    yield proc
    proc.kill()


@pytest.fixture(params=["gateway", "bridge"])
def server(request: pytest.FixtureRequest) -> str:
    """The protocol's HTTP and WebSocket edge: the gateway's own, or the bridge's."""
    if request.param == "gateway":
        return str(request.getfixturevalue("protocol_gateway").http_url)
    return str(request.getfixturevalue("protocol_bridge").http_url)
