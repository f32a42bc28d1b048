"""The SSE run streams against the real server with httpx: framing byte for byte, headers,
ids, errors before and after the headers, heartbeats, disconnects, joins and replays."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

from tests._server import GatewayProcess
from tests.http._sse import HEARTBEAT, Event, assert_ids_increase, iter_events, parse

NewThread = Callable[..., str]


def stream(http: httpx.Client, path: str, body: dict, **kwargs: object) -> tuple[httpx.Response, list[Event]]:
    with http.stream("POST", path, json=body, **kwargs) as response:  # type: ignore[arg-type]
        raw = b"".join(response.iter_raw())
    return response, parse(raw)


def wait_for_status(http: httpx.Client, thread_id: str, run_id: str, *statuses: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = http.get(f"/threads/{thread_id}/runs/{run_id}").json()["status"]
        if status in statuses:
            return str(status)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never became {statuses}")


def test_stream_wire_format_and_headers(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    body = {"assistant_id": "agent", "input": {"topic": "ice cream"}, "stream_mode": "values"}
    response, events = stream(http, f"/threads/{thread_id}/runs/stream", body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-accel-buffering"] == "no"
    run_id = events[0].data["run_id"]
    assert response.headers["location"] == f"/threads/{thread_id}/runs/{run_id}/stream"
    assert response.headers["content-location"] == f"/threads/{thread_id}/runs/{run_id}"
    assert [e.event for e in events] == ["metadata", "values", "values", "values"]
    assert events[0].data == {"run_id": run_id, "attempt": 1}
    assert events[-1].data == {"topic": "ice cream and cats", "joke": "This is a joke about ice cream and cats"}
    # Compact JSON straight from the core, non-ASCII as raw UTF-8, one frame per event.
    assert events[1].raw.split(b"\r\n")[1] == b'data: {"topic":"ice cream"}'
    assert_ids_increase(events)
    assert all(e.event != "end" for e in events)


def test_ids_are_unique_even_when_events_share_a_millisecond(http: httpx.Client) -> None:
    body = {"assistant_id": "burst", "input": {"n": 500}, "stream_mode": "custom"}
    _, events = stream(http, "/runs/stream", body)
    assert len(events) == 501
    assert [e.data for e in events[1:]] == [{"i": i} for i in range(500)]
    assert_ids_increase(events)


def test_non_ascii_and_newlines_stay_on_one_data_line(http: httpx.Client, new_thread: NewThread) -> None:
    body = {"assistant_id": "agent", "input": {"topic": "crème\nbrûlée 🍮"}, "stream_mode": "updates"}
    _, events = stream(http, f"/threads/{new_thread()}/runs/stream", body)
    assert events[1].data == {"refine_topic": {"topic": "crème\nbrûlée 🍮 and cats"}}
    assert "brûlée 🍮".encode() in events[1].raw


def test_subgraph_events_are_named_with_their_namespace(http: httpx.Client, new_thread: NewThread) -> None:
    body = {"assistant_id": "subgraphs", "input": {"foo": "x"}, "stream_mode": "updates", "stream_subgraphs": True}
    _, events = stream(http, f"/threads/{new_thread()}/runs/stream", body)
    names = [e.event for e in events]
    assert names[:2] == ["metadata", "updates"]
    inner = [n for n in names if n.startswith("updates|")]
    assert len(inner) == 2 and all(n.startswith("updates|node_2:") for n in inner)
    assert [e.data for e in events if e.event in inner] == [
        {"subgraph_node_1": {"bar": "bar"}},
        {"subgraph_node_2": {"foo": "hi! xbar"}},
    ]


def test_graph_failure_is_the_last_event(http: httpx.Client) -> None:
    body = {"assistant_id": "failing", "input": {"topic": "x"}, "stream_mode": "updates"}
    response, events = stream(http, "/runs/stream", body)
    assert response.status_code == 200
    assert [e.event for e in events] == ["metadata", "error"]
    assert events[-1].data == {"error": "ValueError", "message": "the node failed on purpose"}


def test_unlisted_exception_messages_are_hidden(http: httpx.Client) -> None:
    _, events = stream(http, "/runs/stream", {"assistant_id": "secret", "input": {}})
    assert events[-1].data == {"error": "Secret", "message": "An internal error occurred"}


@pytest.mark.parametrize(
    ("path", "body", "status", "detail"),
    [
        ("/runs/stream", b"{not json", 422, "Invalid JSON in request body"),
        ("/runs/stream", b"[]", 422, "must be a JSON object"),
        ("/runs/stream", b'{"input": {}}', 422, "assistant_id is required"),
        ("/runs/stream", b'{"assistant_id": "agent", "stream_mode": "bogus"}', 422, "stream_mode: 'bogus'"),
        ("/runs/stream", b'{"assistant_id": "agent", "stream_mode": ["tools"]}', 422, "stream_mode: 'tools'"),
        ("/runs/stream", b'{"assistant_id": "agent", "metadata": null}', 422, "metadata must be an object"),
        ("/runs/stream", b'{"assistant_id": "nope"}', 422, "Invalid assistant: 'nope'"),
        ("/runs/stream", b'{"assistant_id": "00000000-0000-0000-0000-000000000000"}', 404, "not found"),
        ("/runs/stream", b'{"assistant_id": "agent", "command": {"resume": 1}}', 400, "provide a thread_id"),
        ("/runs/stream", b'{"assistant_id": "agent", "on_disconnect": "x"}', 422, "on_disconnect"),
        ("/threads/not-a-uuid/runs/stream", b'{"assistant_id": "agent"}', 422, "Invalid thread ID"),
        ("/threads/not-a-uuid/runs/wait", b'{"assistant_id": "agent"}', 422, "Invalid thread ID"),
        ("/threads/not-a-uuid/runs", b'{"assistant_id": "agent"}', 422, "Invalid thread ID"),
        ("/threads/00000000-0000-0000-0000-000000000000/runs/stream", b'{"assistant_id": "agent"}', 404, "not found"),
        (
            "/runs/stream",
            b'{"assistant_id": "agent", "config": {"configurable": {"a": 1}}, "context": {"b": 2}}',
            400,
            "Cannot specify both configurable and context",
        ),
    ],
)
def test_request_errors_come_before_the_stream(
    http: httpx.Client, path: str, body: bytes, status: int, detail: str
) -> None:
    response = http.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert detail in response.json()["detail"]


def test_a_busy_thread_rejects_with_409(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    run = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": "slow", "input": {"n": 100, "delay": 0.05}})
    body = {"assistant_id": "agent", "input": {"topic": "x"}, "multitask_strategy": "reject"}
    response = http.post(f"/threads/{thread_id}/runs/stream", json=body)
    assert response.status_code == 409
    assert "already running" in response.json()["detail"]
    http.post(f"/threads/{thread_id}/runs/{run.json()['run_id']}/cancel")


def test_heartbeats_on_streams_and_newlines_on_waits(http: httpx.Client, new_thread: NewThread) -> None:
    """A run quiet for longer than the 5 s heartbeat interval."""
    quiet = {"assistant_id": "slow", "input": {"n": 2, "delay": 3.0}, "stream_mode": "custom"}

    def sse() -> bytes:
        with http.stream("POST", f"/threads/{new_thread()}/runs/stream", json=quiet) as response:
            return b"".join(response.iter_raw())

    def wait() -> bytes:
        with http.stream("POST", f"/threads/{new_thread()}/runs/wait", json=quiet) as response:
            assert response.headers["content-type"] == "application/json"
            return b"".join(response.iter_raw())

    with ThreadPoolExecutor(2) as pool:
        sse_job, wait_job = pool.submit(sse), pool.submit(wait)
        sse_raw, wait_raw = sse_job.result(), wait_job.result()
    assert HEARTBEAT in sse_raw
    events = parse(sse_raw)
    assert [e.event for e in events] == ["metadata", "custom", "custom"]
    assert wait_raw.startswith(b"\n")
    assert orjson.loads(wait_raw) == {"n": 2, "delay": 3.0, "ticks": 2}


def test_disconnect_with_on_disconnect_cancel_interrupts_the_run(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    body = {
        "assistant_id": "slow",
        "input": {"n": 400, "delay": 0.05},
        "stream_mode": "custom",
        "on_disconnect": "cancel",
    }
    with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
        run_id = response.headers["content-location"].rsplit("/", 1)[1]
        for event in iter_events(response):
            if event.event == "custom":
                break
    assert wait_for_status(http, thread_id, run_id, "interrupted", "success") == "interrupted"
    assert http.get(f"/threads/{thread_id}").json()["status"] == "interrupted"


def test_disconnect_by_default_lets_the_run_finish(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    body = {"assistant_id": "slow", "input": {"n": 20, "delay": 0.02}, "stream_mode": "custom"}
    with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
        run_id = response.headers["content-location"].rsplit("/", 1)[1]
        next(e for e in iter_events(response) if e.event == "custom")
    assert wait_for_status(http, thread_id, run_id, "interrupted", "success") == "success"


def test_join_with_cancel_on_disconnect(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    run = http.post(
        f"/threads/{thread_id}/runs",
        json={"assistant_id": "slow", "input": {"n": 400, "delay": 0.05}, "stream_mode": "custom"},
    ).json()
    path = f"/threads/{thread_id}/runs/{run['run_id']}/stream?cancel_on_disconnect=true"
    with http.stream("GET", path) as response:
        next(e for e in iter_events(response) if e.event == "custom")
    assert wait_for_status(http, thread_id, run["run_id"], "interrupted", "success") == "interrupted"


@pytest.mark.parametrize("resumable", [True, False], ids=["resumable", "not-resumable"])
def test_resume_with_last_event_id_misses_nothing(http: httpx.Client, new_thread: NewThread, resumable: bool) -> None:
    thread_id = new_thread()
    body = {
        "assistant_id": "slow",
        "input": {"n": 40, "delay": 0.01},
        "stream_mode": ["custom", "values"],
        "stream_resumable": resumable,
    }
    with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
        location = response.headers["location"]
        first: list[Event] = []
        for event in iter_events(response):
            first.append(event)
            if len(first) == 5:
                break
    with http.stream("GET", location, headers={"Last-Event-ID": first[-1].id or ""}) as response:
        rest = parse(b"".join(response.iter_raw()))
    with http.stream("GET", location, headers={"Last-Event-ID": "-1"}) as response:
        everything = parse(b"".join(response.iter_raw()))
    assert_ids_increase(first + rest)
    assert [(e.id, e.event, e.data) for e in first + rest] == [(e.id, e.event, e.data) for e in everything]
    assert [e.data for e in everything if e.event == "custom"] == [{"tick": i} for i in range(40)]
    assert everything[-1].data == {"n": 40, "delay": 0.01, "ticks": 40}


def test_join_without_last_event_id_on_a_finished_run_ends_at_once(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    run = http.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "agent", "input": {"topic": "x"}})
    run_id = run.headers["content-location"].rsplit("/", 1)[1]
    with http.stream("GET", f"/threads/{thread_id}/runs/{run_id}/stream") as response:
        assert response.status_code == 200
        assert response.headers["location"] == f"/threads/{thread_id}/runs/{run_id}/stream"
        assert b"".join(response.iter_raw()) == b""


def test_join_stream_mode_single_json_array_and_repeated_union(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    body = {"assistant_id": "custom", "input": {"query": "q"}, "stream_mode": ["values", "updates", "custom"]}
    response, events = stream(http, f"/threads/{thread_id}/runs/stream", body)
    location = response.headers["location"]

    def join(query: str) -> list[str]:
        with http.stream("GET", location + query, headers={"Last-Event-ID": "0"}) as joined:
            return [e.event for e in parse(b"".join(joined.iter_raw()))]

    assert join("?stream_mode=custom") == ["metadata", "custom", "custom"]
    assert join('?stream_mode=["custom","updates"]') == ["metadata", "custom", "custom", "updates"]
    assert join("?stream_mode=custom&stream_mode=updates") == ["metadata", "custom", "custom", "updates"]
    assert join("") == [e.event for e in events]
    assert http.get(location + "?stream_mode=bogus").status_code == 422


def test_join_errors(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    missing = "00000000-0000-0000-0000-000000000000"
    assert http.get(f"/threads/{thread_id}/runs/{missing}/stream").status_code == 404
    assert http.get(f"/threads/{thread_id}/runs/not-a-uuid/stream").status_code == 422
    assert http.get(f"/runs/{missing}/stream").status_code == 404
    run = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": "agent", "input": {"topic": "x"}}).json()
    location = f"/threads/{thread_id}/runs/{run['run_id']}/stream"
    # Ours, but of another run, or past what a seq can be: refused before anything happens.
    for last_id in ("123-4", "18446744073709551616", f"123-{2**63}", "9" * 5000, f"{'9' * 5000}-1"):
        bad = http.get(location, headers={"Last-Event-ID": last_id})
        assert bad.status_code == 422 and "last_event_id" in bad.json()["detail"], bad.text
        assert len(bad.json()["detail"]) < 200
    for last_id in ("18446744073709551616", "9" * 5000):
        bad = http.get(f"/threads/{thread_id}/runs/{missing}/stream", headers={"Last-Event-ID": last_id})
        assert bad.status_code == 422


@pytest.mark.parametrize("last_id", ["mock_event_20", "garbage", "x-y", "7-*"])
def test_a_join_with_an_event_id_not_ours_follows_the_run_live(
    http: httpx.Client, new_thread: NewThread, last_id: str
) -> None:
    # As the Agent Server: nothing of the run comes after an id it did not issue, so nothing
    # is replayed, and the run is followed to its end.
    thread_id = new_thread()
    body = {"assistant_id": "slow", "input": {"n": 4, "delay": 0.3}, "stream_mode": ["custom", "values"]}
    run = http.post(f"/threads/{thread_id}/runs", json=body).json()
    wait_for_status(http, thread_id, run["run_id"], "running")
    location = f"/threads/{thread_id}/runs/{run['run_id']}/stream"
    with http.stream("GET", location, headers={"Last-Event-ID": last_id}) as response:
        assert response.status_code == 200
        events = parse(b"".join(response.iter_raw()))
    assert "metadata" not in [e.event for e in events]
    assert_ids_increase(events)
    ticks = [e.data["tick"] for e in events if e.event == "custom"]
    assert ticks and ticks == list(range(4 - len(ticks), 4))
    assert events[-1].event == "values" and events[-1].data["ticks"] == 4


def test_stateless_location_joins_the_run(http: httpx.Client) -> None:
    body = {"assistant_id": "agent", "input": {"topic": "x"}, "stream_mode": "updates"}
    response, events = stream(http, "/runs/stream", body)
    run_id = events[0].data["run_id"]
    assert response.headers["location"] == f"/runs/{run_id}/stream"
    assert response.headers["content-location"] == f"/runs/{run_id}"
    with http.stream("GET", response.headers["location"], headers={"Last-Event-ID": events[1].id or ""}) as joined:
        assert joined.status_code == 200
        rest = parse(b"".join(joined.iter_raw()))
    assert [(e.id, e.data) for e in rest] == [(e.id, e.data) for e in events[2:]]


def test_stateless_run_that_keeps_its_thread(http: httpx.Client) -> None:
    body = {"assistant_id": "agent", "input": {"topic": "x"}, "stream_mode": "checkpoints", "on_completion": "keep"}
    response, events = stream(http, "/runs/stream", body)
    assert [e.event for e in events] == ["metadata", "checkpoints", "checkpoints", "checkpoints", "checkpoints"]
    thread_path = response.headers["content-location"]
    assert thread_path.startswith("/threads/")
    thread_id = thread_path.split("/")[2]
    assert http.get(f"/threads/{thread_id}").json()["values"] == {
        "topic": "x and cats",
        "joke": "This is a joke about x and cats",
    }
    assert http.get(thread_path).json()["status"] == "success"


def test_a_resumable_run_replays_from_its_log_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "gateway.sqlite"
    body = {"assistant_id": "agent", "input": {"topic": "x"}, "stream_mode": "updates", "stream_resumable": True}
    first = GatewayProcess(db).start()
    try:
        with httpx.Client(base_url=first.http_url) as client:
            thread_id = client.post("/threads", json={}).json()["thread_id"]
            response, events = stream(client, f"/threads/{thread_id}/runs/stream", body)
    finally:
        first.terminate()
    second = GatewayProcess(db).start()
    try:
        with httpx.Client(base_url=second.http_url) as client:
            last_id = {"Last-Event-ID": events[0].id or ""}
            with client.stream("GET", response.headers["location"], headers=last_id) as joined:
                replayed = parse(b"".join(joined.iter_raw()))
            with client.stream("GET", f"/threads/{thread_id}/stream", headers=last_id) as thread_stream:
                from_thread = []
                for event in iter_events(thread_stream):
                    from_thread.append(event)
                    if event.data.get("status") == "run_done":
                        break
    finally:
        second.kill()
    assert [(e.id, e.event, e.data) for e in replayed] == [(e.id, e.event, e.data) for e in events[1:]]
    # The thread stream replays the same events, and the run's end as run_done.
    assert [(e.id, e.data) for e in from_thread[:-1]] == [(e.id, e.data) for e in events[1:]]
    assert from_thread[-1].data == {"status": "run_done", "run_id": events[0].data["run_id"]}
