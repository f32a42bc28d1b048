"""Several gateway processes on one Postgres database and one Redis: any replica serves any
request about any run; a replica that dies (SIGKILL) has its runs taken over once their lease
runs out, from their last checkpoint; one that drains (SIGTERM) hands its runs back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pytest
import redis
from langgraph.gateway.v1 import runs_pb2, runs_pb2_grpc

from gateway.process.workers import _MIN_LIFETIME
from tests._backends import REDIS
from tests._server import ROOT, TEST_CONFIG
from tests.http._sse import Event, assert_ids_increase, iter_events, parse
from tests.scale.conftest import Replica

SLOW = {"assistant_id": "slow", "stream_mode": ["custom", "values"]}


def _thread(http: httpx.Client) -> str:
    return str(http.post("/threads", json={}).raise_for_status().json()["thread_id"])


def _status(http: httpx.Client, thread_id: str, run_id: str) -> str:
    return str(http.get(f"/threads/{thread_id}/runs/{run_id}").raise_for_status().json()["status"])


def _wait_status(http: httpx.Client, thread_id: str, run_id: str, *statuses: str, within: float = 30) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status = _status(http, thread_id, run_id)
        if status in statuses:
            return status
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} is still {status}, not {statuses}")


def _join(http: httpx.Client, thread_id: str, run_id: str, last_event_id: str = "0") -> list[Event]:
    response = http.get(f"/threads/{thread_id}/runs/{run_id}/stream", headers={"Last-Event-ID": last_event_id})
    assert response.status_code == 200, response.text
    return parse(response.content)


def test_a_run_created_on_one_replica_is_streamed_joined_and_waited_for_on_another(replica: Replica) -> None:
    a, b = replica(), replica()
    with httpx.Client(base_url=a.http_url, timeout=60) as ha, httpx.Client(base_url=b.http_url, timeout=60) as hb:
        thread_id = _thread(ha)
        assert hb.get(f"/threads/{thread_id}").status_code == 200
        run = ha.post(f"/threads/{thread_id}/runs", json={**SLOW, "input": {"n": 20, "delay": 0.02}}).json()
        # Joined through the other replica from the start, live, to the end.
        events = _join(hb, thread_id, run["run_id"])
        assert_ids_increase(events)
        assert [e.data["tick"] for e in events if e.event == "custom"] == list(range(20))
        assert events[-1].event == "values" and events[-1].data["ticks"] == 20
        # Resumed through either, after any event: exactly what came after it.
        for http in (ha, hb):
            assert _join(http, thread_id, run["run_id"], events[5].id or "") == events[6:]
        # The outcome, and a stateless run waited for, through the other replica.
        assert hb.get(f"/threads/{thread_id}/runs/{run['run_id']}/join").json()["ticks"] == 20
        waited = hb.post("/runs/wait", json={"assistant_id": "agent", "input": {"topic": "y"}})
        assert waited.json()["joke"] == "This is a joke about y and cats"
        # Runs queue on their thread whichever replica takes them: one at a time, in order.
        runs = [
            (ha if i % 2 else hb)
            .post(f"/threads/{thread_id}/runs", json={"assistant_id": "slow", "input": {"n": 2, "delay": 0.01}})
            .json()["run_id"]
            for i in range(6)
        ]
        for run_id in runs:
            assert hb.get(f"/threads/{thread_id}/runs/{run_id}/join").json()["ticks"] == 2
        listed = {r["run_id"]: r["status"] for r in ha.get(f"/threads/{thread_id}/runs?limit=50").json()}
        assert all(listed[run_id] == "success" for run_id in runs)


def test_a_run_read_only_where_it_runs_writes_nothing_to_redis_until_another_replica_asks(
    replica: Replica, shared_backends: tuple[str, ...]
) -> None:
    prefix = shared_backends[shared_backends.index("--redis-prefix") + 1]
    a, b = replica(), replica()
    rd = redis.Redis.from_url(REDIS)
    with (
        httpx.Client(base_url=a.http_url, timeout=60) as ha,
        httpx.Client(base_url=b.http_url, timeout=60) as hb,
        contextlib.closing(rd),
    ):
        thread_id = _thread(ha)
        body = {**SLOW, "input": {"n": 5, "delay": 0.01}}
        streamed = parse(ha.post(f"/threads/{thread_id}/runs/stream", json=body).content)
        run_id = streamed[0].data["run_id"]
        stateless = parse(ha.post("/runs/stream", json=body).content)
        assert [e.event for e in streamed] == [e.event for e in stateless]
        assert [e.data["tick"] for e in streamed if e.event == "custom"] == list(range(5))
        for run in (run_id, stateless[0].data["run_id"]):
            assert not rd.exists(f"{prefix}run:{run}:events")
        # Resumed after its end through the other replica: what the replica that ran it still
        # holds is written to Redis once, and replayed from where the client was.
        assert _join(hb, thread_id, run_id, streamed[2].id or "") == streamed[3:]
        assert rd.exists(f"{prefix}run:{run_id}:events")
        assert _join(hb, thread_id, run_id, streamed[4].id or "") == streamed[5:]
        # Joined live through the other replica: from where the run is, to its end.
        run = ha.post(f"/threads/{thread_id}/runs", json={**SLOW, "input": {"n": 40, "delay": 0.05}}).json()
        _wait_status(ha, thread_id, run["run_id"], "running")
        time.sleep(0.5)
        joined = parse(hb.get(f"/threads/{thread_id}/runs/{run['run_id']}/stream").content)
        ticks = [e.data["tick"] for e in joined if e.event == "custom"]
        assert 0 < ticks[0] and ticks == list(range(ticks[0], 40)), ticks
        assert joined[-1].event == "values" and joined[-1].data["ticks"] == 40
        assert_ids_increase(joined)


def test_a_thread_stream_on_one_replica_follows_runs_executed_by_another(replica: Replica) -> None:
    a, b = replica(), replica()
    with httpx.Client(base_url=a.http_url, timeout=60) as ha, httpx.Client(base_url=b.http_url, timeout=60) as hb:
        thread_id = _thread(ha)
        with hb.stream("GET", f"/threads/{thread_id}/stream") as response:
            assert response.status_code == 200
            time.sleep(0.3)
            created = []
            for n in (3, 4):
                body = {**SLOW, "input": {"n": n, "delay": 0.01}, "multitask_strategy": "enqueue"}
                created.append(ha.post(f"/threads/{thread_id}/runs", json=body).json()["run_id"])
            seen: list[Event] = []
            for event in iter_events(response):
                seen.append(event)
                if event.event == "values" and event.data.get("ticks") == 4:
                    break
        # Each run whole, from its metadata on, in order, though another process ran it.
        started = [e.data["run_id"] for e in seen if e.event == "metadata" and "attempt" in e.data]
        assert started == created
        assert [e.data["tick"] for e in seen if e.event == "custom"] == [0, 1, 2, 0, 1, 2, 3]


def test_a_run_through_one_replica_takes_its_assistant_as_another_replica_last_changed_it(replica: Replica) -> None:
    # A replica creates runs with the assistant as it last read it, checked in the admission:
    # a change through another replica holds for the next run, whichever path admits it.
    a, b = replica(), replica()
    with httpx.Client(base_url=a.http_url, timeout=60) as ha, httpx.Client(base_url=b.http_url, timeout=60) as hb:
        assistant = ha.post("/assistants", json={"graph_id": "contextual", "context": {"greeting": "hi"}}).json()
        assistant_id = assistant["assistant_id"]
        thread_id = _thread(hb)

        def said_through_b() -> tuple[str, str]:
            stateless = hb.post("/runs/wait", json={"assistant_id": assistant_id, "input": {}})
            on_thread = hb.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": assistant_id, "input": {}})
            assert stateless.status_code == on_thread.status_code == 200, (stateless.text, on_thread.text)
            return stateless.json()["said"], on_thread.json()["said"]

        assert said_through_b() == ("hi!", "hi!")
        ha.patch(f"/assistants/{assistant_id}", json={"context": {"greeting": "hey"}}).raise_for_status()
        assert said_through_b() == ("hey!", "hey!")
        ha.post(f"/assistants/{assistant_id}/latest", json={"version": 1}).raise_for_status()
        assert said_through_b() == ("hi!", "hi!")
        ha.delete(f"/assistants/{assistant_id}").raise_for_status()
        gone = hb.post("/runs/wait", json={"assistant_id": assistant_id, "input": {}})
        assert gone.status_code == 404 and assistant_id in gone.text


def test_concurrent_rejects_through_both_replicas_accept_exactly_one(replica: Replica) -> None:
    a, b = replica(), replica()

    async def trial(ha: httpx.AsyncClient, hb: httpx.AsyncClient) -> list[int]:
        thread_id = (await ha.post("/threads", json={})).json()["thread_id"]
        # Long enough (0.5 s) that the four requests all come while the first run runs: a 50 ms
        # run had once ended before the last request came, which may then be accepted.
        body = {"assistant_id": "slow", "input": {"n": 50, "delay": 0.01}, "multitask_strategy": "reject"}
        answers = await asyncio.gather(
            *(client.post(f"/threads/{thread_id}/runs", json=body) for client in (ha, hb, ha, hb))
        )
        return sorted(answer.status_code for answer in answers)

    async def main() -> None:
        async with (
            httpx.AsyncClient(base_url=a.http_url, timeout=60) as ha,
            httpx.AsyncClient(base_url=b.http_url, timeout=60) as hb,
        ):
            for _ in range(20):
                assert await trial(ha, hb) == [200, 409, 409, 409]

    asyncio.run(main())


def test_cancel_from_another_replica_stops_a_running_and_a_queued_run(replica: Replica) -> None:
    a, b = replica(), replica()
    with httpx.Client(base_url=a.http_url, timeout=60) as ha, httpx.Client(base_url=b.http_url, timeout=60) as hb:
        thread_id = _thread(ha)
        running = ha.post(f"/threads/{thread_id}/runs", json={**SLOW, "input": {"n": 1000, "delay": 0.01}}).json()
        queued = ha.post(f"/threads/{thread_id}/runs", json={**SLOW, "input": {"n": 5, "delay": 0.01}}).json()
        _wait_status(ha, thread_id, running["run_id"], "running")
        started = time.monotonic()
        assert hb.post(f"/threads/{thread_id}/runs/{queued['run_id']}/cancel").status_code == 202
        assert _status(ha, thread_id, queued["run_id"]) == "interrupted"
        cancelled = hb.post(f"/threads/{thread_id}/runs/{running['run_id']}/cancel?wait=true")
        assert cancelled.status_code == 200
        assert _status(ha, thread_id, running["run_id"]) == "interrupted"
        assert time.monotonic() - started < 5  # the target is 1 s; the check only bounds a hang
        # Both streams end, each with its own end, joined from either replica.
        assert _join(hb, thread_id, queued["run_id"]) == []
        assert _join(ha, thread_id, running["run_id"])[-1].event == "custom"


def test_a_resumable_run_that_has_not_written_yet_is_joined_from_its_start_through_another_replica(
    replica: Replica,
) -> None:
    # Queued behind its thread's run, it has no event anywhere yet: a join from its start
    # through the other replica waits for them, where it was once refused as expired.
    a, b = replica(), replica()
    with httpx.Client(base_url=a.http_url, timeout=60) as ha, httpx.Client(base_url=b.http_url, timeout=60) as hb:
        thread_id = _thread(ha)
        first = ha.post(f"/threads/{thread_id}/runs", json={**SLOW, "input": {"n": 10, "delay": 0.05}}).json()
        body = {**SLOW, "input": {"n": 3, "delay": 0.01}, "stream_resumable": True}
        queued = ha.post(f"/threads/{thread_id}/runs", json=body).json()
        assert _status(hb, thread_id, queued["run_id"]) == "pending"
        events = _join(hb, thread_id, queued["run_id"])
        assert [e.data["tick"] for e in events if e.event == "custom"] == [0, 1, 2]
        assert events[0].event == "metadata" and events[-1].event == "values"
        assert_ids_increase(events)
        assert _status(ha, thread_id, first["run_id"]) == "success"
        # Over gRPC the same, right after the run is created through the other replica.
        fresh = ha.post(f"/threads/{thread_id}/runs", json=body).json()
        request = runs_pb2.JoinRunStreamRequest(thread_id=thread_id, run_id=fresh["run_id"], last_event_id="0")
        with grpc.insecure_channel(b.grpc_target) as channel:
            joined = runs_pb2_grpc.RunsServiceStub(channel).JoinRunStream(request, timeout=60)
            cases = [event.WhichOneof("event") for event in joined]
        assert cases[0] == "metadata" and cases.count("custom") == 3 and cases[-1] == "end", cases


def test_a_killed_replicas_run_is_taken_over_from_its_last_checkpoint(replica: Replica) -> None:
    lease = ("--lease-seconds", "1")
    a, b = replica(*lease), replica(*lease)
    with httpx.Client(base_url=a.http_url, timeout=60) as ha, httpx.Client(base_url=b.http_url, timeout=60) as hb:
        thread_id = _thread(ha)
        # Claimed by `a` as it admits it: its thread is idle.
        body = {
            "assistant_id": "chain_slow",
            "input": {"n": 0},
            "stream_mode": ["updates"],
            "stream_resumable": True,
            "durability": "sync",
        }
        run = ha.post(f"/threads/{thread_id}/runs", json=body).json()
        _wait_status(hb, thread_id, run["run_id"], "running")
        time.sleep(0.5)
        a.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        killed_at = time.monotonic()
        events = _join(hb, thread_id, run["run_id"])
        taken_over = time.monotonic() - killed_at
        assert_ids_increase(events)
        assert [e.data["attempt"] for e in events if e.event == "metadata"] == [1, 2]
        # The second attempt goes on from the last step the first one checkpointed.
        steps = [next(iter(e.data)) for e in events if e.event == "updates"]
        second = [e.event for e in events].index("metadata", 1)
        assert steps[-1] == "step_19"
        # Every step shows but at most one, at the takeover: a step the first attempt saved and
        # had not yet published when it was killed (the gap docs/scale-out.md names).
        missing = {f"step_{i:02}" for i in range(20)} - set(steps)
        if missing:
            shown_first = [int(next(iter(e.data))[5:]) for e in events[:second] if e.event == "updates"]
            # (Killed before it showed any: the one missing is the first.)
            assert missing == {f"step_{max(shown_first, default=-1) + 1:02}"}, (missing, steps)
        resumed_at = next(iter(events[second + 1].data))
        assert resumed_at != "step_00"
        assert _status(hb, thread_id, run["run_id"]) == "success"
        assert hb.get(f"/threads/{thread_id}/state").json()["values"] == {"n": 20}
        assert taken_over < 2 * 1 + 20  # 2 lease periods, plus the rest of the run


def test_events_a_client_got_from_a_resumable_run_survive_its_replica_s_kill_9(replica: Replica) -> None:
    lease = ("--lease-seconds", "1")
    a, b = replica(*lease), replica(*lease)
    with httpx.Client(base_url=a.http_url, timeout=60) as ha, httpx.Client(base_url=b.http_url, timeout=60) as hb:
        thread_id = _thread(ha)
        # Its metadata and first tick come at once; the next tick a second later, after the kill.
        body = {**SLOW, "input": {"n": 4, "delay": 1.0}, "stream_resumable": True}
        with ha.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
            got = []
            for event in iter_events(response):
                got.append(event)
                if event.event == "custom":
                    break
            a.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            a.proc.wait(10)  # type: ignore[union-attr]
        run_id = got[0].data["run_id"]
        # The client resumes where it was, through the other replica, which takes the run over.
        rest = _join(hb, thread_id, run_id, got[-1].id or "")
        assert [e.seq[1] for e in rest] == list(range(got[-1].seq[1] + 1, got[-1].seq[1] + 1 + len(rest)))
        assert rest[0].event == "metadata" and rest[0].data["attempt"] == 2
        assert [e.data["tick"] for e in rest if e.event == "custom"] == [0, 1, 2, 3]
        assert rest[-1].event == "values" and rest[-1].data["ticks"] == 4
        assert [(e.id, e.data) for e in _join(hb, thread_id, run_id, "0")[: len(got)]] == [(e.id, e.data) for e in got]


def test_a_run_whose_process_dies_too_often_ends_with_an_error(replica: Replica) -> None:
    once = ("--lease-seconds", "1", "--max-attempts", "1")
    a, b = replica(*once), replica(*once)
    with httpx.Client(base_url=a.http_url, timeout=60) as ha, httpx.Client(base_url=b.http_url, timeout=60) as hb:
        thread_id = _thread(ha)
        run = ha.post(f"/threads/{thread_id}/runs", json={**SLOW, "input": {"n": 500, "delay": 0.02}}).json()
        _wait_status(hb, thread_id, run["run_id"], "running")
        a.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        assert _wait_status(hb, thread_id, run["run_id"], "error") == "error"
        events = _join(hb, thread_id, run["run_id"])
        assert events[-1].event == "error" and events[-1].data["error"] == "RunLost"
        thread = hb.get(f"/threads/{thread_id}").json()
        assert thread["status"] == "error" and thread["error"]["error"] == "RunLost"


def test_a_draining_replica_hands_its_runs_to_another(replica: Replica) -> None:
    a, b = replica("--grace", "0.2"), replica()
    with httpx.Client(base_url=a.http_url, timeout=60) as ha, httpx.Client(base_url=b.http_url, timeout=60) as hb:
        thread_id = _thread(ha)
        body = {**SLOW, "input": {"n": 60, "delay": 0.02}, "stream_resumable": True}
        run = ha.post(f"/threads/{thread_id}/runs", json=body).json()
        _wait_status(hb, thread_id, run["run_id"], "running")
        time.sleep(0.3)
        assert a.terminate() == 0
        events = _join(hb, thread_id, run["run_id"])
        assert_ids_increase(events)
        # Handed back without using up an attempt: the same attempt starts again elsewhere.
        assert [e.data["attempt"] for e in events if e.event == "metadata"] == [1, 1]
        assert events[-1].data["ticks"] == 60
        assert _status(hb, thread_id, run["run_id"]) == "success"


def _serve_once(*args: str) -> subprocess.CompletedProcess[str]:
    """`serve` that is expected to stop at once."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(TEST_CONFIG), "--grpc-port", "0", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--database-url", "postgresql://postgres@127.0.0.1:1/test"), "cannot connect to Postgres"),
        (("--redis-url", "redis://127.0.0.1:6379/0"), "--redis-url needs --database-url"),
        (("--workers", "2"), "--workers above 1 needs"),
    ],
)
def test_a_backend_or_option_problem_at_start_is_one_line(args: tuple[str, ...], message: str) -> None:
    done = _serve_once(*args)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_redis_unreachable_at_start_is_one_line(shared_backends: tuple[str, ...]) -> None:
    args = list(shared_backends)
    args[args.index("--redis-url") + 1] = "redis://127.0.0.1:1/0"
    done = _serve_once(*args)
    assert done.returncode != 0
    assert "error: cannot connect to Redis" in done.stderr and "Traceback" not in done.stderr


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _age(pid: int) -> float:
    """Seconds since the process started (its start time in /proc, in clock ticks after boot)."""
    started = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    return float(Path("/proc/uptime").read_text().split()[0]) - started / os.sysconf("SC_CLK_TCK")


def test_workers_serve_one_port_and_a_dead_one_is_replaced(replica: Replica) -> None:
    supervisor = replica("--workers", "2")
    pid = supervisor.proc.pid  # type: ignore[union-attr]
    workers = _children(pid)
    assert len(workers) == 2
    with httpx.Client(base_url=supervisor.http_url, timeout=60) as http:
        # New connections are spread over the workers; every one answers for every run.
        for _ in range(10):
            with httpx.Client(base_url=supervisor.http_url, timeout=60) as fresh:
                assert fresh.post("/runs/wait", json={"assistant_id": "agent", "input": {"topic": "w"}}).json()
        # Past the supervisor's crash-loop guard (a worker that dies younger is not replaced),
        # with a margin: the supervisor counts a worker's life from when its start returned,
        # which on a busy machine comes seconds after the process began.
        time.sleep(max(0.0, _MIN_LIFETIME + 3.0 - _age(workers[0])))
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (len(_children(pid)) < 2 or workers[0] in _children(pid)):
            time.sleep(0.2)
        assert len(_children(pid)) == 2 and workers[0] not in _children(pid)
        assert http.get("/ok").status_code == 200
    assert supervisor.terminate() == 0
    assert _children(pid) == []


def test_at_the_run_limit_runs_wait_their_turn_oldest_first(replica: Replica) -> None:
    proc = replica("--max-concurrent-runs", "1")
    with httpx.Client(base_url=proc.http_url, timeout=60) as http:

        def status(run: dict[str, str]) -> str:
            # A stateless run's thread goes with it once it ended (the process that ran it
            # remembers how it ended for a while).
            answer = http.get(f"/threads/{run['thread_id']}/runs/{run['run_id']}")
            return "gone" if answer.status_code == 404 else str(answer.raise_for_status().json()["status"])

        first = http.post("/runs", json={**SLOW, "input": {"n": 100, "delay": 0.01}}).raise_for_status().json()
        assert status(first) == "running"
        thread_id = _thread(http)
        short = {**SLOW, "input": {"n": 5, "delay": 0.01}}
        on_thread = http.post(f"/threads/{thread_id}/runs", json=short).raise_for_status().json()
        stateless = http.post("/runs", json=short).raise_for_status().json()
        # One slot, taken: both wait, stateless or not.
        assert (status(on_thread), status(stateless)) == ("pending", "pending")
        deadline = time.monotonic() + 30
        while (seen := (status(on_thread), status(stateless))) == ("pending", "pending"):
            assert time.monotonic() < deadline, "neither run started"
            time.sleep(0.01)
        # The slot went to the older of the two.
        assert seen[0] != "pending", f"the newer run started first: {seen}"
        assert _wait_status(http, thread_id, on_thread["run_id"], "success") == "success"
        deadline = time.monotonic() + 30
        while status(stateless) not in ("success", "gone"):
            assert time.monotonic() < deadline, f"the stateless run did not end: {status(stateless)}"
            time.sleep(0.05)
