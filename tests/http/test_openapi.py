"""The OpenAPI document (`/openapi.json`) and its page (`/docs`): every route described and every
description routed, served without credentials and less what langgraph.json disables, and a
bounded schemathesis run against a real gateway: no server error, every answer as documented."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import schemathesis
from langgraph_sdk import Auth
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from gateway.auth import AuthHandlers
from gateway.config.http import HttpConfig
from gateway.http._backend import Backend
from gateway.http._custom_auth import AuthMiddleware
from gateway.http._openapi import DOCUMENT, METHODS, WEBSOCKET, operations
from gateway.http.app import build_app
from tests._server import GatewayProcess

HOOKS = Path(__file__).with_name("_schemathesis_hooks.py")
# Graphs that end in well under a second, for the runs the run starts.
QUICK_GRAPHS = ["agent", "subgraphs", "chat", "custom", "approval", "failing", "secret", "nested"]
SCHEDULES = ["0 0 * * *", "*/5 * * * *", "0 9 * * 1-5"]
# Open-ended subscriptions: they answer 200 and stream until the client leaves, which a
# request-response fuzzer only sees as a timeout (tests/http/test_stream.py covers them).
SUBSCRIPTIONS = ["/threads/{thread_id}/stream", "/threads/{thread_id}/stream/events"]


def _committed() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return loaded


def _described(doc: dict[str, Any]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path, item in doc["paths"].items():
        found.update((path, key) for key in item if key in METHODS)
        if WEBSOCKET in item:
            found.add((path, "websocket"))
    return found


def _app(**http: Any) -> Starlette:
    # The routes and the document only: nothing here reaches the backend.
    return build_app(cast(Backend, None), info={}, http=HttpConfig(**http))


def test_every_route_is_described_and_every_description_routed() -> None:
    routed = operations(_app().routes) | {("/metrics", "get")}  # /metrics: the middleware's
    described = _described(_committed())
    assert routed - described == set(), "routes missing from gateway/http/openapi.json"
    assert described - routed == set(), "operations of gateway/http/openapi.json that no route serves"


def test_the_document_is_served_as_committed_without_credentials() -> None:
    with TestClient(build_app(cast(Backend, None), info={}, api_key="s3cret")) as client:
        served = client.get("/openapi.json")
        assert served.status_code == 200 and served.headers["content-type"] == "application/json"
        assert served.json() == _committed()
        assert client.get("/docs").status_code == 200
        assert client.get("/info").status_code == 401


def test_custom_auth_leaves_the_document_open() -> None:
    auth = Auth()

    @auth.authenticate
    async def nobody(authorization: str | None) -> str:
        raise Auth.exceptions.HTTPException(status_code=401, detail="nobody gets in")

    guard = Middleware(AuthMiddleware, handlers=AuthHandlers(auth), max_body_bytes=1 << 20)
    with TestClient(build_app(cast(Backend, None), info={}, auth=[guard])) as client:
        assert client.get("/openapi.json").json() == _committed()
        assert client.get("/docs").status_code == 200
        assert client.post("/threads/search", json={}).status_code == 401


def test_the_document_leaves_out_what_is_disabled() -> None:
    with TestClient(_app(disable_threads=True, disable_store=True)) as client:
        paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/store")]
    for gone in ("/threads", "/threads/search", "/threads/{thread_id}/state", "/threads/{thread_id}/stream/events"):
        assert gone not in paths
    # A thread's runs are the runs' routes, still served.
    for kept in ("/assistants", "/runs", "/threads/{thread_id}/runs", "/ok", "/openapi.json", "/metrics"):
        assert kept in paths
    with TestClient(_app(disable_meta=True)) as client:
        assert client.get("/openapi.json").status_code == 404
        assert client.get("/docs").status_code == 404
        assert client.get("/ok").status_code == 200


def test_a_custom_app_does_not_shadow_the_document() -> None:
    async def mine(request: Request) -> Response:
        return PlainTextResponse("mine")

    custom = Starlette(routes=[Route("/docs", mine), Route("/openapi.json", mine), Route("/hello", mine)])
    app = build_app(cast(Backend, None), info={}, http=HttpConfig(), custom_app=custom)
    with TestClient(app) as client:
        assert client.get("/openapi.json").json() == _committed()
        assert client.get("/docs").headers["content-type"].startswith("text/html")
        assert client.get("/hello").text == "mine"


def test_the_docs_page_is_self_contained_and_lists_every_operation() -> None:
    with TestClient(_app()) as client:
        page = client.get("/docs").text
    doc = _committed()
    # Nothing to fetch: no script, no stylesheet or image from elsewhere; links are anchors
    # and the document itself.
    assert "<script" not in page.lower()
    assert not re.findall(r"""(?:src|href)=["'](?!#|openapi\.json)""", page)
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                assert f'id="op-{item[method]["operationId"]}"' in page, (method, path)
    for name in doc["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    # What the document says is escaped, not markup.
    assert "<b>Request body</b>" in page and "</script>" not in page


def _for_the_run(doc: dict[str, Any]) -> dict[str, Any]:
    """The served document with the graph ids that can be run, as the Agent Server's document
    lists its own graphs, and cron schedules: without them, almost every create would fail."""
    schemas = doc["components"]["schemas"]
    for name in ("AssistantCreate", "AssistantPatch", "AssistantSearchRequest"):
        schemas[name]["properties"]["graph_id"]["enum"] = QUICK_GRAPHS
    for name, schema in schemas.items():
        assistant = schema.get("properties", {}).get("assistant_id", {})
        if name.startswith(("RunCreate", "CronCreate", "ThreadCronCreate")) and "anyOf" in assistant:
            assistant["anyOf"] = [
                branch if branch.get("format") == "uuid" else {**branch, "enum": QUICK_GRAPHS}
                for branch in assistant["anyOf"]
            ]
        if name in ("CronCreate", "ThreadCronCreate", "CronPatch") and "schedule" in schema.get("properties", {}):
            # Random text is rarely a cron expression: a few that are, so that crons get made.
            schema["properties"]["schedule"]["enum"] = SCHEDULES
    return doc


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Any:
    proc = GatewayProcess(tmp_path_factory.mktemp("openapi") / "gateway.sqlite").start()
    try:
        yield proc
    finally:
        proc.kill()


def test_the_answers_of_a_session_are_as_documented(gateway: GatewayProcess) -> None:
    """Objects in the states a fuzzer rarely reaches (an interrupted thread, a finished run,
    crons, versions, store items), each answer checked against the document."""
    schema = schemathesis.openapi.from_dict(_committed())
    checked: list[str] = []

    def call(method: str, template: str, body: Any = None, **path: str) -> Any:
        response = client.request(method, template.format(**path), json=body)
        assert response.status_code < 300, (method, template, response.text)
        schema[template][method].validate_response(response)
        checked.append(f"{method} {template}")
        return response.json() if response.headers.get("content-type") == "application/json" else None

    with httpx.Client(base_url=gateway.http_url, timeout=30) as client:
        thread_id = call("POST", "/threads", {"metadata": {"owner": "ann"}})["thread_id"]
        ids = {"thread_id": thread_id}
        call("GET", "/threads/{thread_id}", **ids)
        call("GET", "/threads/{thread_id}/state", **ids)
        asked = {"assistant_id": "approval", "input": {"action": "deploy"}}
        call("POST", "/threads/{thread_id}/runs/wait", asked, **ids)
        run_id = call("GET", "/threads/{thread_id}/runs", **ids)[0]["run_id"]
        call("GET", "/threads/{thread_id}/runs/{run_id}", **ids, run_id=run_id)
        call("GET", "/threads/{thread_id}/runs/{run_id}/join", **ids, run_id=run_id)
        call("GET", "/threads/{thread_id}", **ids)
        call("GET", "/threads/{thread_id}/state", **ids)
        call("POST", "/threads/{thread_id}/history", {"limit": 5}, **ids)
        call("GET", "/threads/{thread_id}/history", **ids)
        call("POST", "/threads/search", {"metadata": {"owner": "ann"}})
        call("POST", "/threads/count", {})
        resumed = {"assistant_id": "approval", "command": {"resume": "yes"}}
        run = call("POST", "/threads/{thread_id}/runs", resumed, **ids)
        call("GET", "/threads/{thread_id}/runs/{run_id}/join", **ids, run_id=run["run_id"])
        call("POST", "/threads/{thread_id}/state", {"values": {"action": "undo"}}, **ids)
        call("POST", "/threads/{thread_id}/copy", **ids)
        owls = {"assistant_id": "agent", "input": {"topic": "owls"}, "stream_mode": ["values", "updates"]}
        call("POST", "/threads/{thread_id}/runs/stream", owls, thread_id=thread_id)
        call("POST", "/runs/stream", owls)
        call("POST", "/runs/wait", {"assistant_id": "agent", "input": {"topic": "owls"}})
        call("POST", "/runs", {"assistant_id": "agent", "input": {"topic": "owls"}})
        call("POST", "/runs/batch", [{"assistant_id": "agent", "input": {"topic": "owls"}}])
        assistant_id = call("POST", "/assistants", {"graph_id": "subgraphs", "name": "mine"})["assistant_id"]
        ids = {"assistant_id": assistant_id}
        call("PATCH", "/assistants/{assistant_id}", {"metadata": {"v": 2}}, **ids)
        call("POST", "/assistants/{assistant_id}/versions", {}, **ids)
        call("POST", "/assistants/{assistant_id}/latest", {"version": 1}, **ids)
        call("GET", "/assistants/{assistant_id}", **ids)
        call("GET", "/assistants/{assistant_id}/graph", **ids)
        call("GET", "/assistants/{assistant_id}/schemas", **ids)
        call("GET", "/assistants/{assistant_id}/subgraphs", **ids)
        call("POST", "/assistants/search", {"graph_id": "subgraphs"})
        call("POST", "/assistants/search", {"select": ["assistant_id", "name"]})
        cron = {"assistant_id": "agent", "schedule": "0 0 * * *", "input": {"topic": "owls"}}
        cron_id = call("POST", "/runs/crons", cron)["cron_id"]
        call("POST", "/threads/{thread_id}/runs/crons", cron, thread_id=thread_id)
        call("PATCH", "/runs/crons/{cron_id}", {"enabled": False}, cron_id=cron_id)
        call("GET", "/runs/crons/{cron_id}", cron_id=cron_id)
        call("POST", "/runs/crons/search", {})
        call("POST", "/runs/crons/count", {})
        call("PUT", "/store/items", {"namespace": ["users", "ann"], "key": "k", "value": {"likes": "owls"}})
        schema["/store/items"]["GET"].validate_response(client.get("/store/items?namespace=users.ann&key=k"))
        schema["/store/items"]["GET"].validate_response(client.get("/store/items?namespace=users.ann&key=none"))
        call("POST", "/store/items/search", {"namespace_prefix": ["users"]})
        call("POST", "/store/namespaces", {})
        call("GET", "/info")
        call("GET", "/ok")
        schema["/ok"]["GET"].validate_response(client.get("/ok?check_db=1"))
        call("GET", "/metrics")
        # The subscriptions the schemathesis run leaves out, where they answer at once.
        stream, events = (
            schema["/threads/{thread_id}/stream"]["GET"],
            schema["/threads/{thread_id}/stream/events"]["POST"],
        )
        unknown = client.get(f"/threads/{uuid.uuid4()}/stream")
        assert unknown.status_code == 404 and stream.validate_response(unknown) is not False
        malformed = client.get("/threads/nope/stream")
        assert malformed.status_code == 422 and stream.validate_response(malformed) is not False
        refused = client.post(f"/threads/{thread_id}/stream/events", json=[])
        assert refused.status_code == 400 and events.validate_response(refused) is not False
        call("DELETE", "/runs/crons/{cron_id}", cron_id=cron_id)
        call("DELETE", "/assistants/{assistant_id}", assistant_id=assistant_id)
        call("DELETE", "/store/items", {"namespace": ["users", "ann"], "key": "k"})
        call("DELETE", "/threads/{thread_id}/runs/{run_id}", thread_id=thread_id, run_id=run_id)
        call("POST", "/threads/prune", {"thread_ids": [thread_id], "strategy": "keep_latest"})
        call("DELETE", "/threads/{thread_id}", thread_id=thread_id)
    assert len(checked) > 40


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(gateway: GatewayProcess, tmp_path: Path) -> None:
    served = httpx.get(f"{gateway.http_url}/openapi.json", timeout=10).json()
    assert served == _committed()
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(_for_the_run(served)))
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", str(schema),
        "--url", gateway.http_url,
        "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", "5",
        "--workers", "1",
        "--request-timeout", "15",
        "--suppress-health-check", "all",
        *[arg for path in SUBSCRIPTIONS for arg in ("--exclude-path", path)],
        "--no-color",
    ]  # fmt: skip
    run = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert tested is not None and int(tested.group(1)) == len(_described(served)) - len(SUBSCRIPTIONS) - 1
    assert "Server error" not in run.stdout
