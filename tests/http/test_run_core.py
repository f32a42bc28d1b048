"""The run core's rules under concurrent requests, and its defaults, through real servers:
multitask strategies decided atomically per thread, cancels that never half-apply, LangGraph's
own recursion limit and context defaults, deletes that leave no run behind, one outcome for
/wait on every path, pruning while serving, bounded memory for finished runs, and a shutdown
that drains before it closes storage."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import grpc
import httpx
import pytest
from langgraph.gateway.v1 import runs_pb2

from tests._server import GatewayProcess
from tests.conftest import make_stubs
from tests.http._bridge import BridgeProcess
from tests.http._sse import parse

SLOW = {"assistant_id": "slow", "input": {"n": 200, "delay": 0.02}}
TRIALS = 20


async def _thread(client: httpx.AsyncClient) -> str:
    response = await client.post("/threads", json={})
    response.raise_for_status()
    return str(response.json()["thread_id"])


async def _runs(client: httpx.AsyncClient, thread_id: str) -> list[dict[str, object]]:
    response = await client.get(f"/threads/{thread_id}/runs", params={"limit": 100})
    response.raise_for_status()
    return list(response.json())


async def _settle(client: httpx.AsyncClient, thread_id: str) -> list[dict[str, object]]:
    """The thread's runs once none is pending or running."""
    for _ in range(600):
        runs = await _runs(client, thread_id)
        if all(r["status"] not in ("pending", "running") for r in runs):
            return runs
        await asyncio.sleep(0.05)
    raise AssertionError(f"runs of {thread_id} did not end: {runs}")


@pytest.fixture
async def client(gateway: GatewayProcess) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=gateway.http_url, timeout=60) as c:
        yield c


async def test_concurrent_rejects_on_an_idle_thread_accept_exactly_one(client: httpx.AsyncClient) -> None:
    for _ in range(TRIALS):
        thread_id = await _thread(client)
        body = {**SLOW, "multitask_strategy": "reject"}
        answers = await asyncio.gather(*(client.post(f"/threads/{thread_id}/runs", json=body) for _ in range(4)))
        assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]
        run_ids = [r["run_id"] for r in await _runs(client, thread_id)]
        await client.post("/runs/cancel", json={"thread_id": thread_id, "run_ids": run_ids})


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_concurrent_interrupts_leave_only_the_last_run_to_finish(
    client: httpx.AsyncClient, strategy: str
) -> None:
    for _ in range(TRIALS // 2):
        thread_id = await _thread(client)
        # Each run lasts long enough for the others to arrive while it runs, on a gateway busy
        # with the other tests too (at 0.2 s, a run once ended before the next one was admitted).
        body = {"assistant_id": "slow", "input": {"n": 25, "delay": 0.02}, "multitask_strategy": strategy}
        answers = await asyncio.gather(*(client.post(f"/threads/{thread_id}/runs", json=body) for _ in range(4)))
        assert [a.status_code for a in answers] == [200] * 4
        runs = await _settle(client, thread_id)
        # Each run cancels every run admitted before it: one run is left to succeed.
        assert [r["status"] for r in runs].count("success") == 1
        if strategy == "rollback":
            assert len(runs) == 1  # the others are deleted
        else:
            assert sorted(str(r["status"]) for r in runs) == ["interrupted"] * 3 + ["success"]


async def test_concurrent_enqueues_all_run_one_after_another(client: httpx.AsyncClient) -> None:
    thread_id = await _thread(client)
    body = {"assistant_id": "slow", "input": {"n": 2, "delay": 0.01}, "multitask_strategy": "enqueue"}
    answers = await asyncio.gather(*(client.post(f"/threads/{thread_id}/runs", json=body) for _ in range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    runs = await _settle(client, thread_id)
    assert [r["status"] for r in runs] == ["success"] * 8
    state = (await client.get(f"/threads/{thread_id}/state")).json()
    assert state["values"]["ticks"] == 2


async def test_an_interrupt_after_a_cancelled_queued_run_is_accepted(client: httpx.AsyncClient) -> None:
    thread_id = await _thread(client)
    active = (await client.post(f"/threads/{thread_id}/runs", json=SLOW)).json()
    queued = (await client.post(f"/threads/{thread_id}/runs", json=SLOW)).json()
    cancel = await client.post(f"/threads/{thread_id}/runs/{queued['run_id']}/cancel?wait=true")
    assert cancel.status_code == 200
    body = {"assistant_id": "agent", "input": {"topic": "x"}, "multitask_strategy": "interrupt"}
    answer = await client.post(f"/threads/{thread_id}/runs/wait", json=body)
    assert answer.status_code == 200
    assert answer.json()["joke"] == "This is a joke about x and cats"
    statuses = {r["run_id"]: r["status"] for r in await _settle(client, thread_id)}
    assert statuses[active["run_id"]] == "interrupted"
    assert statuses[queued["run_id"]] == "interrupted"


async def test_a_long_graph_runs_under_langgraphs_own_recursion_limit(client: httpx.AsyncClient) -> None:
    answer = await client.post("/runs/wait", json={"assistant_id": "chain", "input": {"n": 0}})
    assert answer.json() == {"n": 50}
    # A limit the request sets still applies.
    limited = {"assistant_id": "chain", "input": {"n": 0}, "config": {"recursion_limit": 10}}
    answer = await client.post("/runs/wait", json=limited)
    assert answer.json()["__error__"]["error"] == "GraphRecursionError"


@pytest.mark.parametrize("body", [{}, {"context": {}}])
async def test_context_defaults_are_built_without_a_context(client: httpx.AsyncClient, body: dict) -> None:
    answer = await client.post("/runs/wait", json={"assistant_id": "contextual", "input": {}, **body})
    assert answer.json() == {"said": "hello!"}
    given = {"assistant_id": "contextual", "input": {}, "context": {"greeting": "hi"}}
    assert (await client.post("/runs/wait", json=given)).json() == {"said": "hi!"}


async def test_a_missing_required_context_field_fails_before_any_values(client: httpx.AsyncClient) -> None:
    response = await client.post("/runs/stream", json={"assistant_id": "strict_context", "input": {}})
    events = parse(response.content)
    assert [e.event for e in events] == ["metadata", "error"]
    assert events[1].data["error"] == "TypeError" and "user" in events[1].data["message"]


async def test_a_run_created_while_its_thread_is_deleted_does_not_survive(client: httpx.AsyncClient) -> None:
    body = {"assistant_id": "agent", "input": {"topic": "ghost"}}
    for _ in range(TRIALS):
        thread_id = await _thread(client)
        deleted, created = await asyncio.gather(
            client.delete(f"/threads/{thread_id}"), client.post(f"/threads/{thread_id}/runs", json=body)
        )
        assert deleted.status_code == 204
        assert created.status_code in (200, 404)
        assert (await client.get(f"/threads/{thread_id}")).status_code == 404
        if created.status_code == 200:
            run_id = created.json()["run_id"]
            assert (await client.get(f"/threads/{thread_id}/runs/{run_id}")).status_code == 404
        # A thread made again with the same id starts empty: no run wrote to it after the delete.
        await asyncio.sleep(0.05)
        assert (await client.post("/threads", json={"thread_id": thread_id})).status_code == 200
        assert (await client.get(f"/threads/{thread_id}/state")).json()["values"] == {}
        await client.delete(f"/threads/{thread_id}")


async def test_deleting_a_busy_thread_cancels_its_runs(client: httpx.AsyncClient) -> None:
    thread_id = await _thread(client)
    run = (await client.post(f"/threads/{thread_id}/runs", json=SLOW)).json()
    queued = (await client.post(f"/threads/{thread_id}/runs", json=SLOW)).json()
    assert (await client.delete(f"/threads/{thread_id}")).status_code == 204
    for run_id in (run["run_id"], queued["run_id"]):
        assert (await client.get(f"/threads/{thread_id}/runs/{run_id}")).status_code == 404
        joined = await client.get(f"/threads/{thread_id}/runs/{run_id}/join")
        assert joined.status_code == 404


async def test_wait_with_two_interrupts_answers_the_same_through_the_bridge(
    client: httpx.AsyncClient, bridge: BridgeProcess
) -> None:
    body = {"assistant_id": "two_interrupts", "input": {}}
    direct = (await client.post("/runs/wait", json=body)).json()
    async with httpx.AsyncClient(base_url=bridge.http_url, timeout=60) as remote:
        bridged = (await remote.post("/runs/wait", json=body)).json()
    # Each run has its own interrupt ids; the answers are otherwise the same.
    for answer in (direct, bridged):
        assert sorted(i["value"] for i in answer["__interrupt__"]) == ["left?", "right?"]


def test_the_event_log_is_pruned_while_serving(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path / "db.sqlite", extra_args=("--event-retention", "1")).start()
    try:
        with httpx.Client(base_url=proc.http_url, timeout=30) as http:
            thread_id = http.post("/threads", json={}).json()["thread_id"]
            body = {"assistant_id": "agent", "input": {"topic": "x"}, "stream_resumable": True}
            stateful = http.post(f"/threads/{thread_id}/runs/stream", json=body)
            stateless = http.post("/runs/stream", json=body)
            replays = [
                f"{stateful.headers['content-location']}/stream",
                f"{stateless.headers['content-location']}/stream",
            ]
            for path in replays:
                replay = http.get(path, headers={"Last-Event-ID": "0"})
                assert parse(replay.content)[0].event == "metadata"
            # Pruned a second after the runs ended (looked for every tenth of the retention).
            deadline = time.monotonic() + 30
            for path in replays:
                while (expired := http.get(path, headers={"Last-Event-ID": "0"})).status_code == 200:
                    assert time.monotonic() < deadline, f"{path}: still replayed"
                    time.sleep(0.1)
                assert expired.status_code == 410, (path, expired.text)
    finally:
        proc.kill()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_finished_runs_do_not_keep_their_events(gateway: GatewayProcess) -> None:
    # 150 runs of ~2 MiB of events each: kept with their rings, finished runs held ~300 MiB.
    pid = gateway.proc.pid  # type: ignore[union-attr]
    body = {"assistant_id": "paced", "input": {"n": 100, "pad": 20_000}, "stream_mode": ["custom"]}
    with httpx.Client(base_url=gateway.http_url, timeout=60) as http:
        http.post("/runs/wait", json=body)
        before = _rss_kib(pid)
        for _ in range(150):
            assert http.post("/runs/wait", json=body).status_code == 200
    grown = _rss_kib(pid) - before
    assert grown < 128 * 1024, f"the server kept {grown} KiB after 150 finished runs"


async def test_requests_during_shutdown_get_answers_not_internal_errors(tmp_path: Path) -> None:
    proc = GatewayProcess(tmp_path / "db.sqlite", extra_args=("--grace", "0.5")).start()
    try:
        async with grpc.aio.insecure_channel(proc.grpc_target) as channel:
            stubs = make_stubs(channel)
            async with httpx.AsyncClient(base_url=proc.http_url, timeout=30) as client:
                thread_id = await _thread(client)
            # Its outcome comes from the stored thread: the run streams no values.
            request = runs_pb2.CreateRunRequest(
                assistant_id="slow", thread_id=thread_id, stream_mode=[runs_pb2.STREAM_MODE_CUSTOM]
            )
            request.input.struct_value.update({"n": 1000, "delay": 0.01})
            run = await stubs.runs.CreateRun(request)
            joined = asyncio.ensure_future(
                stubs.runs.JoinRun(runs_pb2.JoinRunRequest(thread_id=thread_id, run_id=run.run_id))
            )
            await asyncio.sleep(0.3)
            proc.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            result = await joined
            assert result.run.status == runs_pb2.RUN_STATUS_INTERRUPTED
            assert json.loads(result.result_json) == {"n": 1000, "delay": 0.01}
            assert proc.proc.wait(30) == 0  # type: ignore[union-attr]
    finally:
        proc.kill()
    assert not [line for line in proc.stderr_lines if "internal error" in line]
