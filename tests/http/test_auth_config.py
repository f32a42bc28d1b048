"""The rest of langgraph.json's `http` section with custom auth: route groups turned off (over
gRPC too), auth on the custom app's routes, the app's middleware after auth, and the bridge in
front of an auth gateway, which forwards each caller's credentials."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from langgraph.gateway.v1 import assistants_pb2, assistants_pb2_grpc, runs_pb2, runs_pb2_grpc

from tests._auth import ALICE, BOB, auth_config, auth_gateway
from tests._server import GatewayProcess
from tests.http._bridge import BridgeProcess


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    folder = tmp_path_factory.mktemp("guarded")
    config = auth_config(
        folder,
        disable_runs=True,
        disable_assistants=True,
        enable_custom_route_auth=True,
        middleware_order="auth_first",
    )
    proc, _ = auth_gateway(folder, config=config)
    yield proc
    proc.kill()


def test_turned_off_routes_are_not_served(guarded: GatewayProcess) -> None:
    with httpx.Client(base_url=guarded.http_url, headers=ALICE) as alice:
        thread_id = alice.post("/threads", json={}).json()["thread_id"]
        for method, path in [
            ("POST", f"/threads/{thread_id}/runs/wait"),
            ("GET", f"/threads/{thread_id}/runs"),
            ("POST", "/runs/wait"),
            ("POST", "/assistants/search"),
        ]:
            assert alice.request(method, path, json={"assistant_id": "agent"}).status_code == 404
        assert alice.get(f"/threads/{thread_id}").status_code == 200
        assert httpx.get(f"{guarded.http_url}/runs/wait").status_code == 401


async def test_turned_off_route_groups_are_off_over_grpc_too(guarded: GatewayProcess) -> None:
    async with grpc.aio.insecure_channel(guarded.grpc_target) as channel:
        for call in (
            runs_pb2_grpc.RunsServiceStub(channel).CreateRun(
                runs_pb2.CreateRunRequest(assistant_id="agent"), metadata=tuple(ALICE.items())
            ),
            assistants_pb2_grpc.AssistantsServiceStub(channel).SearchAssistants(
                assistants_pb2.SearchAssistantsRequest(), metadata=tuple(ALICE.items())
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_the_custom_apps_routes_need_auth_when_asked_and_its_middleware_runs_after_it(
    guarded: GatewayProcess,
) -> None:
    with httpx.Client(base_url=guarded.http_url) as client:
        assert client.get("/custom/hello").status_code == 401
        assert client.get("/ok").json() == {"ok": True}
        mine = client.get("/custom/whoami", headers=ALICE)
        assert mine.json() == {"identity": "alice"} and mine.headers["x-seen-user"] == "alice"
        # auth_first: the app's middleware sees the authenticated user on the API's routes too.
        threads = client.post("/threads/search", json={}, headers=BOB)
        assert threads.status_code == 200 and threads.headers["x-seen-user"] == "bob"


def test_by_default_the_apps_routes_are_open_and_its_middleware_runs_first(tmp_path: Path) -> None:
    config = auth_config(tmp_path, disable_threads=True, disable_meta=True, app=None)
    proc, _ = auth_gateway(tmp_path, config=config)
    try:
        with httpx.Client(base_url=proc.http_url, headers=ALICE) as alice:
            assert alice.post("/threads", json={}).status_code == 404
            assert alice.get("/info").status_code == 404
            assert alice.get("/ok").json() == {"ok": True}
            assert alice.post("/runs/wait", json={"assistant_id": "whoami", "input": {}}).json()["user_id"] == "alice"
    finally:
        proc.kill()


def test_middleware_first_is_the_default(tmp_path: Path) -> None:
    proc, _ = auth_gateway(tmp_path)
    try:
        with httpx.Client(base_url=proc.http_url) as client:
            hello = client.get("/custom/hello")
            assert hello.status_code == 200 and hello.headers["x-seen-user"] == "-"
            assert client.get("/custom/whoami", headers=ALICE).json() == {"identity": None}
            assert client.post("/threads/search", json={}, headers=ALICE).headers["x-seen-user"] == "-"
    finally:
        proc.kill()


def test_the_bridge_forwards_each_callers_credentials(tmp_path: Path) -> None:
    proc, _ = auth_gateway(tmp_path)
    bridge = BridgeProcess(proc.grpc_target, config=str(auth_config(tmp_path))).start()
    try:
        with (
            httpx.Client(base_url=bridge.http_url, headers=ALICE) as alice,
            httpx.Client(base_url=bridge.http_url, headers=BOB) as bob,
            httpx.Client(base_url=bridge.http_url) as anonymous,
        ):
            thread_id = alice.post("/threads", json={}).json()["thread_id"]
            ran = alice.post(
                f"/threads/{thread_id}/runs/wait",
                json={"assistant_id": "whoami", "input": {}},
                headers={"x-tenant": "acme"},
            )
            assert ran.json()["user"] == {"identity": "alice", "display_name": "Alice", "tenant": "acme"}
            run_id = alice.get(f"/threads/{thread_id}/runs").json()[0]["run_id"]
            for method, path in [
                ("GET", f"/threads/{thread_id}"),
                ("GET", f"/threads/{thread_id}/state"),
                ("GET", f"/threads/{thread_id}/runs"),
                ("GET", f"/threads/{thread_id}/runs/{run_id}"),
                ("GET", f"/threads/{thread_id}/runs/{run_id}/stream"),
                ("GET", f"/threads/{thread_id}/runs/{run_id}/join"),
                ("POST", f"/threads/{thread_id}/runs/wait"),
                ("DELETE", f"/threads/{thread_id}"),
            ]:
                body = {"assistant_id": "canary", "input": {"note": "intruder"}} if method == "POST" else None
                refused = anonymous.request(method, path, json=body)
                assert refused.status_code == 401 and refused.json() == {"detail": "Invalid or missing token"}
                assert bob.request(method, path, json=body).status_code == 404, path
            assert alice.get(f"/threads/{thread_id}").status_code == 200
            banned = anonymous.post("/threads", json={}, headers={"authorization": "Bearer banned"})
            assert banned.status_code == 403 and banned.json() == {"detail": "This token is banned"}
            assert thread_id not in {t["thread_id"] for t in bob.post("/threads/search", json={}).json()}
            # The bridge applies the config's http section: its CORS and its app.
            preflight = anonymous.options(
                "/threads", headers={"origin": "https://app.example", "access-control-request-method": "POST"}
            )
            assert preflight.headers["access-control-allow-origin"] == "https://app.example"
            assert anonymous.get("/custom/hello").json() == {"hello": "world"}
    finally:
        bridge.kill()
        proc.kill()
