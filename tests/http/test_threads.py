"""Thread routes: threads, their state and history, state updates, and the thread stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from tests._server import GatewayProcess
from tests.http._sse import Event, aiter_events, assert_ids_increase

NewThread = Callable[..., str]
MISSING = "00000000-0000-0000-0000-000000000000"


def test_create_get_patch_delete(http: httpx.Client) -> None:
    created = http.post("/threads", json={"metadata": {"owner": "ann"}})
    assert created.status_code == 200
    thread = created.json()
    assert thread["status"] == "idle" and thread["values"] is None and thread["metadata"] == {"owner": "ann"}
    thread_id = thread["thread_id"]
    assert http.get(f"/threads/{thread_id}").json()["thread_id"] == thread_id
    patched = http.patch(f"/threads/{thread_id}", json={"metadata": {"team": "x"}})
    assert patched.json()["metadata"] == {"owner": "ann", "team": "x"}
    assert http.delete(f"/threads/{thread_id}").status_code == 204
    assert http.get(f"/threads/{thread_id}").status_code == 404


def test_create_with_id_and_if_exists(http: httpx.Client) -> None:
    thread_id = "01a20a00-0000-7000-8000-000000000001"
    http.delete(f"/threads/{thread_id}")
    assert http.post("/threads", json={"thread_id": thread_id}).status_code == 200
    assert http.post("/threads", json={"thread_id": thread_id}).status_code == 409
    again = http.post("/threads", json={"thread_id": thread_id, "if_exists": "do_nothing"})
    assert again.status_code == 200 and again.json()["thread_id"] == thread_id
    assert http.post("/threads", json={"thread_id": "nope"}).status_code == 422
    assert http.post("/threads", content=b"{oops", headers={"content-type": "application/json"}).status_code == 422


def test_thread_errors(http: httpx.Client) -> None:
    assert http.get(f"/threads/{MISSING}").json() == {"detail": f"Thread with ID {MISSING} not found"}
    assert http.get("/threads/not-a-uuid").status_code == 422
    assert http.get(f"/threads/{MISSING}/state").status_code == 404
    assert http.get(f"/threads/{MISSING}/history").status_code == 404
    assert http.patch(f"/threads/{MISSING}", json={"metadata": {}}).status_code == 404
    assert http.delete(f"/threads/{MISSING}").status_code == 404


def test_search_and_count(http: httpx.Client, new_thread: NewThread) -> None:
    tag = new_thread()  # a value no other test uses
    ids = [new_thread(metadata={"tag": tag, "i": i}) for i in range(3)]
    found = http.post("/threads/search", json={"metadata": {"tag": tag}, "limit": 2})
    assert [t["thread_id"] for t in found.json()] == ids[::-1][:2]
    assert found.headers["x-pagination-next"] == "2"
    rest = http.post("/threads/search", json={"metadata": {"tag": tag}, "limit": 2, "offset": 2})
    assert [t["thread_id"] for t in rest.json()] == ids[:1] and "x-pagination-next" not in rest.headers
    ascending = http.post(
        "/threads/search", json={"metadata": {"tag": tag}, "sort_by": "created_at", "sort_order": "asc"}
    )
    assert [t["thread_id"] for t in ascending.json()] == ids
    by_ids = http.post("/threads/search", json={"ids": ids[:2]})
    assert sorted(t["thread_id"] for t in by_ids.json()) == sorted(ids[:2])
    assert http.post("/threads/count", json={"metadata": {"tag": tag}}).json() == 3
    assert http.post("/threads/search", json={"status": "bogus"}).status_code == 422
    assert http.post("/threads/search", json={"limit": 0}).status_code == 422
    # Each id is checked before it reaches storage (Postgres compared text to booleans: a 500).
    for bad, says in (([False], "ids[0] must be a thread id, not a boolean"), (["nope"], "ids[0]: must be a UUID")):
        refused = http.post("/threads/search", json={"ids": bad})
        assert refused.status_code == 422 and says in refused.text, refused.text


def test_search_by_values(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    topic = f"values-{thread_id}"
    http.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "agent", "input": {"topic": topic}})
    found = http.post("/threads/search", json={"values": {"topic": f"{topic} and cats"}}).json()
    assert [t["thread_id"] for t in found] == [thread_id]
    assert http.post("/threads/count", json={"values": {"topic": f"{topic} and cats"}}).json() == 1


def test_state_checkpoints_and_history(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    empty = http.get(f"/threads/{thread_id}/state").json()
    assert empty["values"] == {} and empty["checkpoint"] is None
    assert http.get(f"/threads/{thread_id}/history").json() == []
    http.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "agent", "input": {"topic": "x"}})
    state = http.get(f"/threads/{thread_id}/state").json()
    assert state["values"] == {"topic": "x and cats", "joke": "This is a joke about x and cats"}
    assert state["next"] == [] and state["checkpoint"]["thread_id"] == thread_id
    assert state["metadata"]["step"] == 2

    assert len(http.get(f"/threads/{thread_id}/history").json()) == 1  # the default limit is 1
    history = http.post(f"/threads/{thread_id}/history", json={"limit": 10}).json()
    assert [h["metadata"]["step"] for h in history] == [2, 1, 0, -1]
    before = history[1]["checkpoint_id"]
    older = http.get(f"/threads/{thread_id}/history?limit=10&before={before}").json()
    assert [h["metadata"]["step"] for h in older] == [0, -1]
    for form in (before, {"checkpoint_id": before}, {"configurable": {"checkpoint_id": before}}):
        assert len(http.post(f"/threads/{thread_id}/history", json={"limit": 10, "before": form}).json()) == 2

    at = http.get(f"/threads/{thread_id}/state/{history[2]['checkpoint_id']}").json()
    assert at["values"] == {"topic": "x"} and at["next"] == ["refine_topic"]
    posted = http.post(f"/threads/{thread_id}/state/checkpoint", json={"checkpoint": {"checkpoint_id": before}})
    assert posted.json()["values"] == {"topic": "x and cats"}
    assert http.post(f"/threads/{thread_id}/state/checkpoint", json={}).status_code == 422


def test_update_state(http: httpx.Client, new_thread: NewThread) -> None:
    thread_id = new_thread()
    assert http.post(f"/threads/{thread_id}/state", json={"values": {"topic": "x"}}).status_code == 400
    http.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "agent", "input": {"topic": "x"}})
    response = http.post(f"/threads/{thread_id}/state", json={"values": {"joke": "edited"}, "as_node": "generate_joke"})
    assert response.status_code == 200
    checkpoint = response.json()["checkpoint"]
    assert checkpoint["thread_id"] == thread_id and checkpoint["checkpoint_id"]
    state = http.get(f"/threads/{thread_id}/state").json()
    assert state["values"]["joke"] == "edited" and state["checkpoint_id"] == checkpoint["checkpoint_id"]
    assert http.get(f"/threads/{thread_id}").json()["values"]["joke"] == "edited"
    bad = http.post(f"/threads/{thread_id}/state", json={"values": {"joke": "x"}, "as_node": "nope"})
    assert bad.status_code == 400


def test_a_state_that_does_not_fit_its_graph_is_a_conflict_not_a_busy_thread(
    http: httpx.Client, new_thread: NewThread
) -> None:
    # `chat`'s state is a dataclass with a required `topic`: LangGraph cannot read the state
    # back after a run without it, so neither can the run's end nor the state routes.
    thread_id = new_thread()
    result = http.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "chat", "input": {}})
    assert result.json()["__error__"]["error"] == "TypeError"
    assert http.get(f"/threads/{thread_id}").json()["status"] == "error"
    for response in (
        http.get(f"/threads/{thread_id}/state"),
        http.get(f"/threads/{thread_id}/history"),
        http.post(f"/threads/{thread_id}/history", json={}),
    ):
        assert response.status_code == 409
        assert response.json()["detail"].startswith(f"The state of thread {thread_id} does not fit graph 'chat'")
    updated = http.post(f"/threads/{thread_id}/state", json={"values": {"joke": "x"}})
    assert updated.status_code == 400 and "TypeError" in updated.json()["detail"]


def test_a_checkpoint_is_always_of_the_path_thread(http: httpx.Client, new_thread: NewThread) -> None:
    mine, other = new_thread(), new_thread()
    for thread_id, topic in ((mine, "mine"), (other, "other")):
        http.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "agent", "input": {"topic": topic}})
    elsewhere = {"thread_id": other, "checkpoint_ns": ""}
    # With no input a run goes on from the checkpoint: of its own thread.
    resumed = http.post(f"/threads/{mine}/runs/wait", json={"assistant_id": "agent", "checkpoint": elsewhere})
    assert resumed.json()["topic"] == "mine and cats"
    history = http.post(f"/threads/{mine}/history", json={"limit": 10, "checkpoint": elsewhere}).json()
    assert {h["checkpoint"]["thread_id"] for h in history} == {mine}
    assert http.get(f"/threads/{other}/state").json()["values"]["topic"] == "other and cats"
    for bad, field in (({"checkpoint_ns": 5}, "checkpoint_ns"), ({"checkpoint_id": "x"}, "checkpoint_id")):
        for response in (
            http.post(f"/threads/{mine}/history", json={"checkpoint": bad}),
            http.post(f"/threads/{mine}/state/checkpoint", json={"checkpoint": bad}),
            http.post(f"/threads/{mine}/runs", json={"assistant_id": "agent", "checkpoint": bad}),
        ):
            assert response.status_code == 422 and f"checkpoint.{field}" in response.json()["detail"]


class Collected(list[Event]):
    """The events of a stream read in the background; `until` waits for a condition on them."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Condition()

    async def add(self, event: Event) -> None:
        async with self.changed:
            self.append(event)
            self.changed.notify_all()

    async def until(self, condition: Callable[[], bool]) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(condition), 30)


@asynccontextmanager
async def thread_stream(url: str, thread_id: str, **kwargs: Any) -> AsyncIterator[Collected]:
    events = Collected()
    opened = asyncio.get_running_loop().create_future()

    async def read() -> None:
        async with (
            httpx.AsyncClient(base_url=url, timeout=30) as client,
            client.stream("GET", f"/threads/{thread_id}/stream", **kwargs) as response,
        ):
            opened.set_result(response.status_code)
            async for event in aiter_events(response):
                await events.add(event)

    reader = asyncio.create_task(read())
    try:
        done, _ = await asyncio.wait({reader, opened}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        assert opened in done and opened.result() == 200
        yield events
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


@pytest.fixture
async def client(gateway: GatewayProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.http_url, timeout=30) as c:
        yield c


def run_id_of(response: httpx.Response) -> str:
    return response.headers["content-location"].rsplit("/", 1)[1]


async def test_thread_stream_follows_every_run(client: httpx.AsyncClient, gateway: GatewayProcess) -> None:
    thread_id = (await client.post("/threads", json={})).json()["thread_id"]
    async with thread_stream(gateway.http_url, thread_id) as events:
        first = await client.post(
            f"/threads/{thread_id}/runs/wait", json={"assistant_id": "agent", "input": {"topic": "a"}}
        )
        second = await client.post(
            f"/threads/{thread_id}/runs/wait",
            json={"assistant_id": "agent", "input": {"topic": "b"}, "stream_mode": "updates"},
        )
        run_ids = [run_id_of(r) for r in (first, second)]
        await events.until(lambda: any(e.data == {"status": "run_done", "run_id": run_ids[1]} for e in events))
        got = list(events)
    assert [e.event for e in got] == ["metadata", "values", "values", "values", "metadata"] + [
        "metadata",
        "updates",
        "updates",
        "metadata",
    ]
    assert got[0].data == {"run_id": run_ids[0], "attempt": 1}
    assert got[4].data == {"status": "run_done", "run_id": run_ids[0]}
    assert_ids_increase(got)


async def test_thread_stream_joins_a_run_already_running(client: httpx.AsyncClient, gateway: GatewayProcess) -> None:
    thread_id = (await client.post("/threads", json={})).json()["thread_id"]
    body = {"assistant_id": "slow", "input": {"n": 100, "delay": 0.02}, "stream_mode": "custom"}
    run = (await client.post(f"/threads/{thread_id}/runs", json=body)).json()
    async with thread_stream(gateway.http_url, thread_id) as events:
        await events.until(lambda: any(e.data.get("status") == "run_done" for e in events))
    ticks = [e.data["tick"] for e in events if e.event == "custom"]
    assert ticks and ticks == list(range(ticks[0], 100))  # live from when it joined, in order, no gaps
    assert events[-1].data == {"status": "run_done", "run_id": run["run_id"]}


async def test_thread_stream_lifecycle_and_state_updates(client: httpx.AsyncClient, gateway: GatewayProcess) -> None:
    thread_id = (await client.post("/threads", json={})).json()["thread_id"]
    async with (
        thread_stream(gateway.http_url, thread_id, params={"stream_modes": "lifecycle,state_update"}) as events,
        thread_stream(gateway.http_url, thread_id, params={"stream_mode": "state_update"}) as updates_only,
    ):
        await client.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "agent", "input": {"topic": "a"}})
        edit = {"values": {"joke": "edited"}, "as_node": "generate_joke"}
        assert (await client.post(f"/threads/{thread_id}/state", json=edit)).status_code == 200
        await events.until(lambda: any(e.event == "state_update" for e in events))
        await updates_only.until(lambda: len(updates_only) == 1)
        got = list(events)
    assert [e.event for e in got] == ["metadata", "metadata", "state_update"]
    assert got[1].data["status"] == "run_done"
    update = got[2].data
    assert update["thread_id"] == thread_id and update["state"]["values"]["joke"] == "edited"
    assert [e.event for e in updates_only] == ["state_update"]


async def test_thread_stream_replays_after_last_event_id(client: httpx.AsyncClient, gateway: GatewayProcess) -> None:
    thread_id = (await client.post("/threads", json={})).json()["thread_id"]
    for topic in ("a", "b"):
        body = {"assistant_id": "agent", "input": {"topic": topic}, "stream_mode": "updates", "stream_resumable": True}
        await client.post(f"/threads/{thread_id}/runs/wait", json=body)
    async with thread_stream(gateway.http_url, thread_id, headers={"Last-Event-ID": "0"}) as events:
        await events.until(lambda: sum(e.data.get("status") == "run_done" for e in events) == 2)
        everything = list(events)
    assert [e.event for e in everything] == ["metadata", "updates", "updates", "metadata"] * 2
    assert_ids_increase(everything)
    async with thread_stream(gateway.http_url, thread_id, headers={"Last-Event-ID": everything[5].id}) as events:
        await events.until(lambda: len(events) == 2)
        assert [(e.id, e.data) for e in events] == [(e.id, e.data) for e in everything[6:]]


def test_thread_stream_errors(http: httpx.Client, new_thread: NewThread) -> None:
    assert http.get(f"/threads/{MISSING}/stream").status_code == 404
    thread_id = new_thread()
    assert http.get(f"/threads/{thread_id}/stream?stream_modes=bogus").status_code == 422
    # Not a Redis stream id, or numbers past 64 bits (thousands of digits too).
    for last_id in ("x-y", "18446744073709551616", "1-18446744073709551616", "9" * 5000, f"1-{'9' * 5000}"):
        with http.stream("GET", f"/threads/{thread_id}/stream", headers={"Last-Event-ID": last_id}) as bad_id:
            assert bad_id.status_code == 422 and b"last-event-id" in bad_id.read()
