"""Run routes other than the streams: background runs, wait and join, reading, listing and
cancelling runs."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson
import pytest

from tests.http.test_stream import wait_for_status

NewThread = Callable[..., str]
AGENT_ID = "fe096781-5601-53d2-b2f6-0d3403f7e9ca"
JOKE = {"topic": "x and cats", "joke": "This is a joke about x and cats"}


def test_background_run(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    response = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": "agent", "input": {"topic": "x"}})
    assert response.status_code == 200
    run = response.json()
    assert response.headers["content-location"] == f"/threads/{thread_id}/runs/{run['run_id']}"
    assert "location" not in response.headers
    assert list(run) == [
        "run_id",
        "thread_id",
        "assistant_id",
        "metadata",
        "status",
        "kwargs",
        "multitask_strategy",
        "created_at",
        "updated_at",
        "langsmith_session_name",
    ]
    assert run["status"] in ("pending", "running")
    assert run["assistant_id"] == AGENT_ID
    assert run["kwargs"]["stream_mode"] == ["values"]
    joined = http.get(f"/threads/{thread_id}/runs/{run['run_id']}/join")
    assert joined.headers["location"] == f"/threads/{thread_id}/runs/{run['run_id']}/join"
    assert joined.json() == JOKE
    assert http.get(f"/threads/{thread_id}/runs/{run['run_id']}").json()["status"] == "success"


def test_stateless_background_run(http: httpx.Client) -> None:
    response = http.post("/runs", json={"assistant_id": "agent", "input": {"topic": "x"}})
    run = response.json()
    assert response.headers["content-location"] == f"/runs/{run['run_id']}"
    assert run["kwargs"]["temporary"] is True


def test_wait_returns_values_errors_and_interrupts(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    response = http.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "agent", "input": {"topic": "x"}})
    assert response.status_code == 200 and response.json() == JOKE
    run_path = response.headers["content-location"]
    assert response.headers["location"] == run_path + "/join"
    assert http.get(run_path + "/join").json() == JOKE  # a finished run's join gives its result

    failed = http.post(f"/threads/{new_thread()}/runs/wait", json={"assistant_id": "failing", "input": {}})
    assert failed.status_code == 200
    assert failed.json() == {"__error__": {"error": "ValueError", "message": "the node failed on purpose"}}

    thread_id = new_thread()
    asked = http.post(
        f"/threads/{thread_id}/runs/wait", json={"assistant_id": "approval", "input": {"action": "deploy"}}
    )
    interrupt = asked.json()["__interrupt__"]
    assert interrupt[0]["value"] == {"question": "Approve 'deploy'?"}
    assert http.get(f"/threads/{thread_id}").json()["status"] == "interrupted"
    resumed = http.post(
        f"/threads/{thread_id}/runs/wait", json={"assistant_id": "approval", "command": {"resume": "yes"}}
    )
    assert resumed.json() == {"action": "deploy", "approved": True}


def test_stateless_wait(http: httpx.Client) -> None:
    response = http.post("/runs/wait", json={"assistant_id": "agent", "input": {"topic": "x"}})
    assert response.json() == JOKE
    # As the Agent Server: the headers name the temporary thread.
    assert response.headers["location"].startswith("/threads/")
    updates_only = http.post(
        "/runs/wait", json={"assistant_id": "agent", "input": {"topic": "x"}, "stream_mode": "updates"}
    )
    assert updates_only.json() == {}


def test_get_and_list_runs(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    first = http.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "agent", "input": {"topic": "a"}})
    second = http.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "failing", "input": {}})
    ids = [r.headers["content-location"].rsplit("/", 1)[1] for r in (first, second)]
    runs = http.get(f"/threads/{thread_id}/runs").json()
    assert [r["run_id"] for r in runs] == ids[::-1]
    assert [r["status"] for r in runs] == ["error", "success"]
    assert [r["run_id"] for r in http.get(f"/threads/{thread_id}/runs?status=success").json()] == ids[:1]
    assert [r["run_id"] for r in http.get(f"/threads/{thread_id}/runs?limit=1&offset=1").json()] == ids[:1]
    assert http.get(f"/threads/{thread_id}/runs?status=bogus").status_code == 422
    assert http.get(f"/threads/{thread_id}/runs?limit=x").status_code == 422
    missing = "00000000-0000-0000-0000-000000000000"
    assert http.get(f"/threads/{thread_id}/runs/{missing}").status_code == 404
    assert http.get(f"/threads/{thread_id}/runs/not-a-uuid").status_code == 422
    assert http.get(f"/threads/{missing}/runs").status_code == 404


def start_slow(http: httpx.Client, thread_id: str, **extra: object) -> str:
    body = {"assistant_id": "slow", "input": {"n": 400, "delay": 0.05}, "stream_mode": "custom", **extra}
    return str(http.post(f"/threads/{thread_id}/runs", json=body).json()["run_id"])


def test_cancel_interrupt(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    run_id = start_slow(http, thread_id)
    response = http.post(f"/threads/{thread_id}/runs/{run_id}/cancel")
    assert response.status_code == 202 and response.content == b""
    assert wait_for_status(http, thread_id, run_id, "interrupted", "success") == "interrupted"
    again = http.post(f"/threads/{thread_id}/runs/{run_id}/cancel")
    assert again.status_code == 404


def test_cancel_and_wait(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    run_id = start_slow(http, thread_id)
    response = http.post(f"/threads/{thread_id}/runs/{run_id}/cancel?wait=1")
    assert response.status_code == 200
    assert response.headers["location"] == f"/threads/{thread_id}/runs/{run_id}/join"
    assert isinstance(orjson.loads(response.content), dict)
    assert http.get(f"/threads/{thread_id}/runs/{run_id}").json()["status"] == "interrupted"


def test_cancel_rollback_deletes_the_run(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    run_id = start_slow(http, thread_id)
    assert http.post(f"/threads/{thread_id}/runs/{run_id}/cancel?action=rollback&wait=true").status_code == 200
    assert http.get(f"/threads/{thread_id}/runs/{run_id}").status_code == 404


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/threads/00000000-0000-0000-0000-000000000000/runs/00000000-0000-0000-0000-000000000000/cancel", 404),
        ("/threads/not-a-uuid/runs/00000000-0000-0000-0000-000000000000/cancel", 422),
    ],
)
def test_cancel_errors(http: httpx.Client, path: str, status: int) -> None:
    assert http.post(path).status_code == status


def test_cancel_with_an_unknown_action_is_refused(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    run_id = start_slow(http, thread_id)
    response = http.post(f"/threads/{thread_id}/runs/{run_id}/cancel?action=rollbak")
    assert response.status_code == 422 and "action" in response.json()["detail"]
    http.post(f"/threads/{thread_id}/runs/{run_id}/cancel")


def test_bulk_cancel(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    running = start_slow(http, thread_id)
    queued = start_slow(http, thread_id)
    response = http.post("/runs/cancel", json={"thread_id": thread_id, "run_ids": [running, queued]})
    assert response.status_code == 204
    for run_id in (running, queued):
        assert wait_for_status(http, thread_id, run_id, "interrupted", "success") == "interrupted"
    other = new_thread()
    run_id = start_slow(http, other)
    assert http.post("/runs/cancel", json={"status": "all"}).status_code == 204
    assert wait_for_status(http, other, run_id, "interrupted", "success") == "interrupted"
    mixed = http.post("/runs/cancel", json={"status": "all", "thread_id": other, "run_ids": [run_id]})
    assert mixed.status_code == 422
    assert http.post("/runs/cancel", json={"status": "bogus"}).status_code == 422


def test_bulk_cancel_of_every_run_reaches_stateless_ones(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    on_thread = start_slow(http, thread_id)
    body = {"assistant_id": "slow", "input": {"n": 400, "delay": 0.05}, "stream_mode": "custom"}
    stateless = http.post("/runs", json=body).json()
    assert http.post("/runs/cancel", json={"status": "all"}).status_code == 204
    assert wait_for_status(http, thread_id, on_thread, "interrupted", "success") == "interrupted"
    # Read through its temporary thread, which only the gateway's memory keeps once it ended.
    ended = wait_for_status(http, stateless["thread_id"], stateless["run_id"], "interrupted", "success")
    assert ended == "interrupted"


def test_multitask_interrupt_ends_the_first_stream(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    first = start_slow(http, thread_id)
    body = {"assistant_id": "agent", "input": {"topic": "x"}, "multitask_strategy": "interrupt"}
    response = http.post(f"/threads/{thread_id}/runs/wait", json=body)
    assert response.json()["joke"] == "This is a joke about x and cats"
    assert http.get(f"/threads/{thread_id}/runs/{first}").json()["status"] == "interrupted"
