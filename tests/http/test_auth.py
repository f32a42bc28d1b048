"""langgraph.json's custom auth over HTTP, with two users and an anonymous client on every route
that reaches a thread, run or assistant, through httpx and the official Python SDK: 401 without
valid credentials, 403 where a handler refuses, 404 for what belongs to someone else (as if it
did not exist), searches and counts of one's own, no event of another user's run, and the
caller in the graph's config. Then CORS, the custom app, and fuzzed credentials, which never
reach a graph."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from langgraph_sdk import get_sync_client
from langgraph_sdk.errors import NotFoundError

from tests._auth import ALICE, ANONYMOUS, BANNED, BOB, CAROL, accepted, auth_gateway
from tests._server import GatewayProcess
from tests.conftest import BACKENDS, backend_args
from tests.http._sse import parse


@dataclass
class Served:
    proc: GatewayProcess
    canary: Path

    def client(self, headers: dict[str, str]) -> httpx.Client:
        return httpx.Client(base_url=self.proc.http_url, headers=headers, timeout=30)


@pytest.fixture(scope="module", params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The auth gateway on each backend: their storage applies the filters."""
    with backend_args(request.param) as args:
        proc, canary = auth_gateway(tmp_path_factory.mktemp("auth"), *args)
        yield Served(proc, canary)
        proc.kill()


@pytest.fixture(scope="module")
def alice(served: Served) -> Iterator[httpx.Client]:
    with served.client(ALICE) as client:
        yield client


@pytest.fixture(scope="module")
def bob(served: Served) -> Iterator[httpx.Client]:
    with served.client(BOB) as client:
        yield client


@pytest.fixture(scope="module")
def anonymous(served: Served) -> Iterator[httpx.Client]:
    with served.client(ANONYMOUS) as client:
        yield client


@dataclass
class Owned:
    thread_id: str
    run_id: str
    checkpoint_id: str

    def path(self, template: str) -> str:
        return template.replace("{t}", self.thread_id).replace("{r}", self.run_id).replace("{c}", self.checkpoint_id)


def own_thread(client: httpx.Client, **metadata: Any) -> Owned:
    thread = client.post("/threads", json={"metadata": metadata})
    thread.raise_for_status()
    thread_id = thread.json()["thread_id"]
    run = client.post(f"/threads/{thread_id}/runs", json={"assistant_id": "whoami", "input": {}})
    run.raise_for_status()
    run_id = run.json()["run_id"]
    client.get(f"/threads/{thread_id}/runs/{run_id}/join").raise_for_status()
    state = client.get(f"/threads/{thread_id}/state").json()
    return Owned(thread_id, run_id, state["checkpoint_id"])


def canary_notes(served: Served) -> list[str]:
    return served.canary.read_text().splitlines()


CANARY = {"assistant_id": "canary", "input": {"note": "intruder"}}
# Every route that reaches a thread or its runs, with a body where it takes one.
ROUTES = [
    ("GET", "/threads/{t}", None),
    ("PATCH", "/threads/{t}", {"metadata": {"owner": "bob"}}),
    ("GET", "/threads/{t}/state", None),
    ("POST", "/threads/{t}/state", {"values": {"user_id": "mallory"}}),
    ("POST", "/threads/{t}/state/checkpoint", {"checkpoint": {"checkpoint_id": "{c}"}}),
    ("GET", "/threads/{t}/state/{c}", None),
    ("GET", "/threads/{t}/history", None),
    ("POST", "/threads/{t}/history", {}),
    ("GET", "/threads/{t}/stream", None),
    ("POST", "/threads/{t}/runs", CANARY),
    ("POST", "/threads/{t}/runs/stream", CANARY),
    ("POST", "/threads/{t}/runs/wait", CANARY),
    ("POST", "/threads/{t}/runs/wait", {**CANARY, "if_not_exists": "create"}),
    ("GET", "/threads/{t}/runs", None),
    ("GET", "/threads/{t}/runs/{r}", None),
    ("GET", "/threads/{t}/runs/{r}/join", None),
    ("GET", "/threads/{t}/runs/{r}/stream", None),
    ("GET", "/runs/{r}/stream", None),
    ("POST", "/threads/{t}/runs/{r}/cancel", None),
    ("POST", "/runs/cancel", {"thread_id": "{t}", "run_ids": ["{r}"]}),
    ("DELETE", "/threads/{t}", None),
]


def _body(owned: Owned, body: Any) -> Any:
    return None if body is None else json.loads(owned.path(json.dumps(body)))


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_another_users_thread_is_not_found_and_anonymous_callers_are_refused(
    served: Served, alice: httpx.Client, bob: httpx.Client, anonymous: httpx.Client, method: str, path: str, body: Any
) -> None:
    owned = own_thread(alice)
    before = alice.get(owned.path("/threads/{t}")).json()
    refused = anonymous.request(method, owned.path(path), json=_body(owned, body))
    assert refused.status_code == 401, refused.text
    assert refused.json() == {"detail": "Invalid or missing token"}
    hidden = bob.request(method, owned.path(path), json=_body(owned, body))
    assert hidden.status_code == 404, hidden.text
    # Nothing of the thread shows, not even that it exists; nothing of it changed.
    assert "event:" not in hidden.text and "alice" not in hidden.text
    after = alice.get(owned.path("/threads/{t}"))
    assert after.status_code == 200 and after.json() == before
    assert [r["run_id"] for r in alice.get(owned.path("/threads/{t}/runs")).json()] == [owned.run_id]
    assert "intruder" not in canary_notes(served)


def test_the_owner_is_served_on_every_route(alice: httpx.Client) -> None:
    owned = own_thread(alice, topic="mine")
    for method, path, body in ROUTES:
        if path.endswith("/cancel") or method == "DELETE" or path.startswith("/runs/"):
            continue  # nothing left to cancel, a stateful run, and deleting comes last
        if path == "/threads/{t}/stream":
            # The thread stream stays open: its headers say it was served.
            with alice.stream(method, owned.path(path)) as response:
                assert response.status_code == 200
            continue
        if body == CANARY or (isinstance(body, dict) and body.get("assistant_id") == "canary"):
            body = {**body, "input": {"note": "owner"}}
        response = alice.request(method, owned.path(path), json=_body(owned, body))
        assert response.status_code in (200, 202), (method, path, response.status_code, response.text)
    assert alice.delete(owned.path("/threads/{t}")).status_code == 204


def test_search_and_count_show_only_the_callers_threads(
    alice: httpx.Client, bob: httpx.Client, anonymous: httpx.Client
) -> None:
    tag = "search-" + own_thread(alice).thread_id
    mine = {alice.post("/threads", json={"metadata": {"tag": tag}}).json()["thread_id"] for _ in range(3)}
    theirs = {bob.post("/threads", json={"metadata": {"tag": tag}}).json()["thread_id"] for _ in range(2)}
    for client, own in ((alice, mine), (bob, theirs)):
        found = client.post("/threads/search", json={"metadata": {"tag": tag}, "limit": 100}).json()
        assert {t["thread_id"] for t in found} == own
        assert client.post("/threads/count", json={"metadata": {"tag": tag}}).json() == len(own)
    # Asking for the other's threads by owner, or by id, finds none of them: the handler's
    # filter is stamped over the caller's metadata filter, as on the Agent Server.
    found = bob.post("/threads/search", json={"metadata": {"tag": tag, "owner": "alice"}}).json()
    assert {t["thread_id"] for t in found} == theirs
    assert bob.post("/threads/search", json={"ids": sorted(mine)}).json() == []
    total = alice.post("/threads/count", json={}).json()
    assert total >= len(mine) and total == len(alice.post("/threads/search", json={"limit": 1000}).json())
    assert anonymous.post("/threads/search", json={}).status_code == 401
    assert anonymous.post("/threads/count", json={}).status_code == 401


def test_handlers_stamp_the_owner_on_what_is_created(alice: httpx.Client, bob: httpx.Client) -> None:
    created = bob.post("/threads", json={"metadata": {"owner": "alice", "topic": "x"}}).json()
    assert created["metadata"] == {"owner": "bob", "topic": "x"}
    owned = own_thread(alice)
    patched = alice.patch(owned.path("/threads/{t}"), json={"metadata": {"owner": "bob", "n": 1}}).json()
    assert patched["metadata"]["owner"] == "alice" and patched["metadata"]["n"] == 1
    run = alice.get(owned.path("/threads/{t}/runs/{r}")).json()
    assert run["metadata"]["owner"] == "alice"
    # A thread that exists under another owner is not created over, and not revealed as theirs.
    again = bob.post("/threads", json={"thread_id": owned.thread_id, "if_exists": "do_nothing"})
    assert again.status_code == 409
    assert alice.post("/threads", json={"thread_id": owned.thread_id, "if_exists": "do_nothing"}).status_code == 200


def test_stateless_runs_and_their_threads_are_their_callers(alice: httpx.Client, bob: httpx.Client) -> None:
    kept = alice.post("/runs", json={"assistant_id": "agent", "input": {"topic": "x"}, "on_completion": "keep"})
    kept.raise_for_status()
    thread_id, run_id = kept.json()["thread_id"], kept.json()["run_id"]
    alice.get(f"/threads/{thread_id}/runs/{run_id}/join").raise_for_status()
    assert alice.get(f"/threads/{thread_id}").json()["metadata"]["owner"] == "alice"
    assert bob.get(f"/threads/{thread_id}").status_code == 404
    # A temporary thread lives in memory only: its run is seen through its metadata there.
    with alice.stream(
        "POST",
        "/runs/stream",
        json={"assistant_id": "slow", "input": {"n": 30, "delay": 0.05}, "stream_mode": "custom"},
    ) as streaming:
        run_path = streaming.headers["content-location"]
        joined = bob.get(f"{run_path}/stream")
        assert joined.status_code == 404 and joined.headers["content-type"] == "application/json"
        assert alice.get(f"{run_path}/stream", headers={"last-event-id": "0"}, timeout=30).status_code == 200
        streaming.read()


def test_a_stream_of_another_users_run_leaks_no_event(alice: httpx.Client, bob: httpx.Client) -> None:
    owned = own_thread(alice)
    run = alice.post(
        owned.path("/threads/{t}/runs"),
        json={
            "assistant_id": "slow",
            "input": {"n": 40, "delay": 0.05},
            "stream_mode": ["custom"],
            "stream_resumable": True,
        },
    ).json()
    run_path = f"/threads/{owned.thread_id}/runs/{run['run_id']}"
    for path, headers in ((f"{run_path}/stream", {"last-event-id": "0"}), (owned.path("/threads/{t}/stream"), {})):
        with bob.stream("GET", path, headers=headers) as response:
            assert response.status_code == 404
            assert response.headers["content-type"] == "application/json"
            assert b"event:" not in response.read()
    with alice.stream("GET", f"{run_path}/stream", headers={"last-event-id": "0"}) as response:
        events = parse(response.read())
    assert [e.event for e in events].count("custom") == 40


def test_the_caller_reaches_the_graphs_config(alice: httpx.Client, bob: httpx.Client) -> None:
    ran = alice.post(
        "/runs/wait",
        json={"assistant_id": "whoami", "input": {}, "config": {"configurable": {"langgraph_auth_user_id": "mallory"}}},
        headers={"x-tenant": "acme"},
    )
    assert ran.json() == {
        "user_id": "alice",
        "permissions": ["threads:delete"],
        "user": {"identity": "alice", "display_name": "Alice", "tenant": "acme"},
    }
    ran = bob.post("/runs/wait", json={"assistant_id": "whoami", "input": {}, "context": {"langgraph_auth_user": {}}})
    assert ran.json()["user_id"] == "bob" and ran.json()["user"]["display_name"] == "bob"


def test_refusals_are_401_and_403(served: Served, alice: httpx.Client) -> None:
    with served.client(CAROL) as carol:
        mine = carol.post("/threads", json={}).json()["thread_id"]
        assert carol.get(f"/threads/{mine}").status_code == 200
        # The delete handler refuses Carol (no threads:delete), before looking for the thread.
        for thread_id in (mine, own_thread(alice).thread_id):
            refused = carol.delete(f"/threads/{thread_id}")
            assert refused.status_code == 403 and refused.json() == {"detail": "Forbidden"}
    with served.client(BANNED) as banned:
        refused = banned.post("/threads", json={})
        assert refused.status_code == 403 and refused.json() == {"detail": "This token is banned"}
    for authorization in ("Bearer", "Bearer nobody", "Basic YWxpY2U6", "alice-token", "Bearer alice-token extra"):
        with served.client({"authorization": authorization}) as client:
            assert client.post("/threads/search", json={}).status_code == 401


def test_assistants_are_read_by_users_only(alice: httpx.Client, anonymous: httpx.Client) -> None:
    found = alice.post("/assistants/search", json={"graph_id": "whoami"}).json()
    assistant_id = found[0]["assistant_id"]
    for method, path in [
        ("POST", "/assistants/search"),
        ("POST", "/assistants/count"),
        ("GET", f"/assistants/{assistant_id}"),
        ("GET", f"/assistants/{assistant_id}/graph"),
        ("GET", f"/assistants/{assistant_id}/schemas"),
    ]:
        assert alice.request(method, path, json={}).status_code == 200
        assert anonymous.request(method, path, json={}).status_code == 401


def test_ok_and_the_custom_app_stay_open(anonymous: httpx.Client) -> None:
    assert anonymous.get("/ok").json() == {"ok": True}
    assert anonymous.get("/custom/hello").json() == {"hello": "world"}
    # The app's routes win over the API's, as on the Agent Server; /ok is not shadowed.
    assert anonymous.get("/info").json() == {"info": "the app's own"}
    # Nor is the API's description, open as /ok is.
    assert anonymous.get("/openapi.json").json()["openapi"] == "3.1.0"
    assert anonymous.get("/docs").headers["content-type"].startswith("text/html")


def test_cors_as_configured(served: Served, anonymous: httpx.Client) -> None:
    preflight = anonymous.options(
        "/threads",
        headers={
            "origin": "https://app.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert preflight.headers["access-control-max-age"] == "60"
    assert preflight.headers["access-control-allow-methods"] == "GET, POST, PATCH, DELETE"
    evil = anonymous.options(
        "/threads", headers={"origin": "https://evil.example", "access-control-request-method": "POST"}
    )
    assert evil.status_code == 400 and "access-control-allow-origin" not in evil.headers
    # A refusal carries the CORS headers, and Location and Content-Location stay readable.
    refused = anonymous.post("/threads", json={}, headers={"origin": "https://app.example"})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "https://app.example"
    exposed = {h.strip().lower() for h in refused.headers["access-control-expose-headers"].split(",")}
    assert {"x-custom", "location", "content-location"} <= exposed


def test_the_python_sdk_with_each_users_headers(served: Served) -> None:
    alice = get_sync_client(url=served.proc.http_url, headers=ALICE)
    bob = get_sync_client(url=served.proc.http_url, headers=BOB)
    thread = alice.threads.create(metadata={"sdk": True})
    parts = list(alice.runs.stream(thread["thread_id"], "whoami", input={}, stream_mode="values"))
    assert parts[-1].data["user_id"] == "alice"
    with pytest.raises(NotFoundError):
        bob.threads.get(thread["thread_id"])
    with pytest.raises(httpx.HTTPStatusError) as hidden:
        bob.runs.wait(thread["thread_id"], "canary", input={"note": "intruder"})
    assert hidden.value.response.status_code == 404
    assert thread["thread_id"] not in {t["thread_id"] for t in bob.threads.search(limit=1000)}
    assert thread["thread_id"] in {t["thread_id"] for t in alice.threads.search(metadata={"sdk": True})}
    assert "intruder" not in canary_notes(served)


# Header values as HTTP carries them: printable ASCII, no whitespace around.
_HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.strip)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    authorization=st.one_of(
        st.none(),
        _HEADER_TEXT,
        st.builds(lambda s, t: f"{s} {t}".strip(), st.sampled_from(["Bearer", "bearer", "Basic", ""]), _HEADER_TEXT),
        st.sampled_from(["Bearer ALICE-TOKEN", "Bearer  alice-token", "Bearer alice-tokenx", "Bearer banned"]),
    ),
    extra=st.dictionaries(
        st.sampled_from(["x-api-key", "cookie", "x-tenant", "x-auth-scheme", "x-user"]), _HEADER_TEXT, max_size=3
    ),
)
def test_fuzzed_credentials_never_reach_a_graph(
    served: Served, authorization: str | None, extra: dict[str, str]
) -> None:
    assume(not accepted(authorization))
    headers = {**extra, **({"authorization": authorization} if authorization is not None else {})}
    with served.client(headers) as client:
        ran = client.post("/runs/wait", json={"assistant_id": "canary", "input": {"note": "fuzz"}})
        assert ran.status_code in (401, 403), (headers, ran.text)
        assert client.post("/threads", json={}).status_code in (401, 403)
    assert "fuzz" not in canary_notes(served)
