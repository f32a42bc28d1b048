"""TLS and mTLS on the gRPC, HTTP/SSE (and Connect) and metrics ports, with certificates made by
the test (trustme): clients that trust the CA get through, plaintext and unknown clients fail
cleanly, and the server goes on serving. And the bridge in front of such a gateway (its
--target-* options)."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc
from langgraph.gateway.v1 import assistants_pb2, assistants_pb2_grpc

from tests._server import GatewayProcess
from tests.http._bridge import BridgeProcess
from tests.rpc.test_web import envelope, envelopes


@dataclass
class Certs:
    ca: Path
    cert: Path
    key: Path
    client: trustme.LeafCert
    client_cert: Path
    client_key: Path
    other_client: trustme.LeafCert


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    folder = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client@gateway.test")
    out = Certs(
        folder / "ca.pem", folder / "server.pem", folder / "server.key", client,
        folder / "client.pem", folder / "client.key", trustme.CA().issue_cert("stranger@gateway.test"),
    )  # fmt: skip
    ca.cert_pem.write_to_path(out.ca)
    server.private_key_pem.write_to_path(out.key)
    for i, pem in enumerate(server.cert_chain_pems):
        pem.write_to_path(out.cert, append=i > 0)
    client.private_key_pem.write_to_path(out.client_key)
    for i, pem in enumerate(client.cert_chain_pems):
        pem.write_to_path(out.client_cert, append=i > 0)
    return out


def _gateway(tmp_path: Path, certs: Certs, *, mtls: bool) -> GatewayProcess:
    args = ["--tls-cert-file", str(certs.cert), "--tls-key-file", str(certs.key), "--metrics-port", "0"]
    if mtls:
        args += ["--tls-client-ca-file", str(certs.ca)]
    return GatewayProcess(tmp_path / "gateway.sqlite", extra_args=tuple(args)).start()


@pytest.fixture
def tls_gateway(tmp_path: Path, certs: Certs) -> Iterator[GatewayProcess]:
    proc = _gateway(tmp_path, certs, mtls=False)
    yield proc
    proc.kill()


def _credentials(certs: Certs, client: trustme.LeafCert | None = None) -> grpc.ChannelCredentials:
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=certs.ca.read_bytes())
    return grpc.ssl_channel_credentials(
        root_certificates=certs.ca.read_bytes(),
        private_key=client.private_key_pem.bytes(),
        certificate_chain=b"".join(p.bytes() for p in client.cert_chain_pems),
    )


async def _search(target: str, credentials: grpc.ChannelCredentials | None) -> int:
    channel = grpc.aio.insecure_channel(target) if credentials is None else grpc.aio.secure_channel(target, credentials)
    async with channel:
        stub = assistants_pb2_grpc.AssistantsServiceStub(channel)
        found = await stub.SearchAssistants(assistants_pb2.SearchAssistantsRequest(graph_id="agent"), timeout=10)
        return len(found.assistants)


async def _get(url: str, verify: ssl.SSLContext | bool = True) -> httpx.Response:
    async with httpx.AsyncClient(verify=verify, timeout=10) as http:
        return await http.get(url)


def _https(certs: Certs, *, client: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca))
    if client:
        context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    return context


async def test_tls_on_every_port(tls_gateway: GatewayProcess, certs: Certs) -> None:
    assert tls_gateway.ready["tls"] is True
    assert await _search(tls_gateway.grpc_target, _credentials(certs)) == 1
    base = f"https://127.0.0.1:{tls_gateway.http_port}"
    async with httpx.AsyncClient(base_url=base, verify=_https(certs)) as http:
        assert (await http.get("/ok")).json() == {"ok": True}
        assert [a["graph_id"] for a in (await http.post("/assistants/search", json={"graph_id": "agent"})).json()] == [
            "agent"
        ]
        # Connect on the same port, over TLS.
        found = await http.post("/langgraph.gateway.v1.AssistantsService/SearchAssistants", json={"graph_id": "agent"})
        assert found.status_code == 200 and len(found.json()["assistants"]) == 1
    metrics = f"https://127.0.0.1:{tls_gateway.ready['metrics_port']}/metrics"
    assert "grpc" in (await _get(metrics, _https(certs))).text


async def test_http2_by_alpn_and_http1_beside_it(tls_gateway: GatewayProcess, certs: Certs) -> None:
    """Under TLS the HTTP port offers h2 and http/1.1 by ALPN: Connect and gRPC-Web over h2 for the
    clients that ask for it, HTTP/1.1 (SSE, the SDKs) for the others."""
    base = f"https://127.0.0.1:{tls_gateway.http_port}"
    request = envelope(json.dumps({"assistant_id": "agent", "input": {"topic": "tls"}}).encode())
    for http2 in (True, False):
        async with httpx.AsyncClient(base_url=base, verify=_https(certs), http2=http2, timeout=30) as http:
            for content_type in ("application/connect+json", "application/grpc-web+json"):
                reply = await http.post(
                    "/langgraph.gateway.v1.RunsService/RunStream",
                    content=request,
                    headers={"content-type": content_type},
                )
                assert reply.http_version == ("HTTP/2" if http2 else "HTTP/1.1") and reply.status_code == 200
                *events, (flags, _) = envelopes(reply.content)
                assert flags in (0x02, 0x80) and b'"end"' in events[-1][1]
            sse = await http.post("/runs/stream", json={"assistant_id": "agent", "input": {"topic": "tls"}})
            assert sse.http_version == reply.http_version and "a joke about tls and cats" in sse.text


async def test_plaintext_and_untrusting_clients_fail_cleanly(tls_gateway: GatewayProcess, certs: Certs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as plain:
        await _search(tls_gateway.grpc_target, None)
    assert plain.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.aio.AioRpcError) as untrusting:
        await _search(
            tls_gateway.grpc_target,
            grpc.ssl_channel_credentials(root_certificates=certs.client.cert_chain_pems[-1].bytes()),
        )
    assert untrusting.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(httpx.HTTPError):
        await _get(f"http://127.0.0.1:{tls_gateway.http_port}/ok")
    with pytest.raises(httpx.ConnectError):
        await _get(f"https://127.0.0.1:{tls_gateway.http_port}/ok")  # the system's roots
    # And the server goes on serving.
    assert await _search(tls_gateway.grpc_target, _credentials(certs)) == 1
    assert (await _get(f"https://127.0.0.1:{tls_gateway.http_port}/ok", _https(certs))).status_code == 200


async def test_mtls_requires_a_client_certificate_from_the_ca(tmp_path: Path, certs: Certs) -> None:
    proc = _gateway(tmp_path, certs, mtls=True)
    try:
        assert any("tls: mTLS" in line for line in proc.stderr_lines)
        assert await _search(proc.grpc_target, _credentials(certs, certs.client)) == 1
        for refused in (_credentials(certs), _credentials(certs, certs.other_client)):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _search(proc.grpc_target, refused)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        base = f"https://127.0.0.1:{proc.http_port}"
        assert (await _get(f"{base}/ok", _https(certs, client=True))).json() == {"ok": True}
        with pytest.raises(httpx.HTTPError):
            await _get(f"{base}/ok", _https(certs))
        # Health checks need the certificate too: mTLS covers every call.
        async with grpc.aio.secure_channel(proc.grpc_target, _credentials(certs, certs.client)) as channel:
            status = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert status.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        proc.kill()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--tls-cert-file", "{cert}"), "--tls-cert-file and --tls-key-file go together"),
        (("--tls-client-ca-file", "{ca}"), "--tls-client-ca-file needs --tls-cert-file"),
        # An empty path is not the option left out: that would serve plaintext unasked.
        (("--tls-cert-file", "", "--tls-key-file", ""), "--tls-cert-file is an empty path"),
        (
            ("--tls-cert-file", "{cert}", "--tls-key-file", "{key}", "--tls-client-ca-file", ""),
            "--tls-client-ca-file is an empty path",
        ),
        (("--tls-cert-file", "{cert}", "--tls-key-file", "{missing}"), "--tls-key-file {missing}: No such file"),
        (("--tls-cert-file", "{key}", "--tls-key-file", "{key}"), "not a PEM certificate chain and its private key"),
        (
            ("--tls-cert-file", "{cert}", "--tls-key-file", "{key}", "--tls-client-ca-file", "{key}"),
            "--tls-client-ca-file {key}: not PEM CA certificates",
        ),
    ],
)
def test_bad_tls_flags_are_one_line_naming_them(tmp_path: Path, certs: Certs, args: tuple[str, ...], said: str) -> None:
    names = {"cert": certs.cert, "key": certs.key, "ca": certs.ca, "missing": tmp_path / "missing.key"}
    proc = GatewayProcess(tmp_path / "gateway.sqlite", extra_args=tuple(a.format(**names) for a in args))
    with pytest.raises(RuntimeError):
        proc.start(timeout=30)
    errors = [line for line in proc.stderr_lines if line.startswith("error:")]
    assert len(errors) == 1 and said.format(**names) in errors[0], proc.stderr_lines
    assert not any("Traceback" in line for line in proc.stderr_lines)


# The bridge in front of a TLS gateway: `--target-ca-file` (and a client certificate for mTLS).


def _bridge(gateway: GatewayProcess, *args: str | Path) -> BridgeProcess:
    return BridgeProcess(gateway.grpc_target, extra_args=tuple(str(a) for a in args)).start()


def _bridge_answers(bridge: BridgeProcess) -> tuple[int, str]:
    """Whether a run goes through the bridge: its /ok?check_db=1 and a thread's POST /runs/wait."""
    with httpx.Client(base_url=bridge.http_url, timeout=30) as http:
        ok = http.get("/ok", params={"check_db": 1})
        assert ok.json()["services"] == {"gateway": "healthy" if ok.status_code == 200 else "unhealthy"}
        thread = http.post("/threads", json={})
        if thread.status_code != 200:
            assert ok.status_code == 503 and thread.status_code == 503, thread.text
            return 503, thread.json()["detail"]
        wait = http.post(
            f"/threads/{thread.json()['thread_id']}/runs/wait",
            json={"assistant_id": "agent", "input": {"topic": "tls"}},
        )
        assert ok.status_code == wait.status_code == 200, wait.text
        return 200, wait.json()["joke"]


def _no_traceback(bridge: BridgeProcess) -> None:
    assert not any("Traceback" in line for line in bridge.stderr_lines), "".join(bridge.stderr_lines)


def _client_files(folder: Path, client: trustme.LeafCert) -> tuple[Path, Path]:
    cert, key = folder / "client.pem", folder / "client.key"
    client.private_key_pem.write_to_path(key)
    for i, pem in enumerate(client.cert_chain_pems):
        pem.write_to_path(cert, append=i > 0)
    return cert, key


def test_bridge_trusting_the_ca_serves_a_tls_gateway(tls_gateway: GatewayProcess, certs: Certs) -> None:
    bridge = _bridge(tls_gateway, "--target-ca-file", certs.ca)
    try:
        assert _bridge_answers(bridge) == (200, "This is a joke about tls and cats")
        assert any("tls: True" in line for line in bridge.stderr_lines)
    finally:
        bridge.kill()
    _no_traceback(bridge)


def test_bridge_to_a_tls_gateway_without_tls_or_the_ca_answers_503(tls_gateway: GatewayProcess, certs: Certs) -> None:
    """Plaintext, and TLS trusting only the system's roots: the gateway is unhealthy and each
    request 503 with why, as for a gateway that cannot be reached."""
    for args, said in (((), "--target-ca-file"), (("--target-tls",), "CERTIFICATE_VERIFY_FAILED")):
        bridge = _bridge(tls_gateway, *args)
        try:
            status, detail = _bridge_answers(bridge)
            assert status == 503 and said in detail, detail
        finally:
            bridge.kill()
        _no_traceback(bridge)


def test_bridge_with_a_client_certificate_serves_an_mtls_gateway(tmp_path: Path, certs: Certs) -> None:
    gateway = _gateway(tmp_path, certs, mtls=True)
    stranger = _client_files(tmp_path, certs.other_client)
    try:
        bridge = _bridge(
            gateway, "--target-ca-file", certs.ca, "--target-cert-file", certs.client_cert,
            "--target-key-file", certs.client_key,
        )  # fmt: skip
        try:
            assert _bridge_answers(bridge) == (200, "This is a joke about tls and cats")
            assert any("tls: mTLS" in line for line in bridge.stderr_lines)
        finally:
            bridge.kill()
        # Without a certificate, or with one from a CA the gateway does not trust: refused.
        for client in ((), ("--target-cert-file", stranger[0], "--target-key-file", stranger[1])):
            bridge = _bridge(gateway, "--target-ca-file", certs.ca, *client)
            try:
                status, detail = _bridge_answers(bridge)
                assert status == 503 and "--target-cert-file" in detail, detail
            finally:
                bridge.kill()
            _no_traceback(bridge)
    finally:
        gateway.kill()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--target-cert-file", "{cert}"), "--target-cert-file needs --target-key-file"),
        (("--target-key-file", "{key}"), "--target-key-file needs --target-cert-file"),
        (("--target-ca-file", "{missing}"), "--target-ca-file {missing}: No such file"),
        (("--target-ca-file", ""), "--target-ca-file is an empty path"),
        (("--target-cert-file", "{missing}", "--target-key-file", "{key}"), "--target-cert-file {missing}: No such"),
        (("--target-ca-file", "{key}"), "--target-ca-file {key}: not PEM CA certificates"),
        (
            ("--target-cert-file", "{cert}", "--target-key-file", "{server_key}"),
            "--target-cert-file {cert} and --target-key-file {server_key}: not a PEM certificate chain and its",
        ),
    ],
)
def test_bad_target_tls_flags_stop_the_bridge(tmp_path: Path, certs: Certs, args: tuple[str, ...], said: str) -> None:
    names = {
        "cert": certs.client_cert, "key": certs.client_key, "server_key": certs.key, "missing": tmp_path / "missing.pem"
    }  # fmt: skip
    bridge = BridgeProcess("127.0.0.1:1", extra_args=tuple(a.format(**names) for a in args))
    with pytest.raises(RuntimeError):
        bridge.start(timeout=30)
    assert bridge.proc is not None and bridge.proc.wait(10) != 0
    deadline = time.monotonic() + 5
    while not any(line.startswith("error:") for line in bridge.stderr_lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    errors = [line for line in bridge.stderr_lines if line.startswith("error:")]
    assert len(errors) == 1 and said.format(**names) in errors[0], bridge.stderr_lines
    _no_traceback(bridge)
