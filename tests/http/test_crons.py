"""Crons firing on time, on each backend: a gateway that looks for due crons every quarter of a
second, and schedules with a seconds field (croniter's sixth), so that ticks come within the
test's seconds on the machine's real clock. The API's shapes are checked against the reference
in test_api_reference.py."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient

from tests._server import GatewayProcess
from tests.conftest import BACKENDS, backend_args

EVERY_SECOND = "* * * * * *"


@pytest.fixture(scope="module", params=BACKENDS)
def ticking(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with backend_args(request.param) as args:
        folder: Path = tmp_path_factory.mktemp("crons")
        proc = GatewayProcess(folder / "gateway.sqlite", extra_args=(*args, "--cron-interval", "0.25")).start()
        yield proc
        proc.kill()


def wait_until(check: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def fired(proc: GatewayProcess, cron_id: str) -> list[str]:
    """The threads of the runs the cron created so far, as the gateway logs them."""
    made = re.compile(rf"cron {cron_id} created run \S+ on thread (\S+)")
    return [m[1] for line in list(proc.stderr_lines) if (m := made.search(line))]


def ticks_later(proc: GatewayProcess, client: SyncLangGraphClient, ticks: int) -> None:
    """Returns once the gateway has looked for due crons at `ticks` more moments of an
    every-second schedule, each look begun and ended after the call: counted by a cron of its
    own, whose fires are logged (a look fires the crons it finds one after the other)."""
    control = client.crons.create("agent", schedule=EVERY_SECOND, input={"topic": "tick"})
    try:
        # Its first fire is a look begun after the call (it was due only after its creation);
        # the look of its fire `ticks + 1` begins after that of fire `ticks` ended.
        wait_until(lambda: len(fired(proc, control["cron_id"])) >= ticks + 1)
    finally:
        client.crons.delete(control["cron_id"])


def test_a_cron_on_a_thread_fires_each_tick_with_its_payload(ticking: GatewayProcess) -> None:
    client = get_sync_client(url=ticking.http_url)
    thread = client.threads.create()
    cron = client.crons.create_for_thread(
        thread["thread_id"], "agent", schedule=EVERY_SECOND, input={"topic": "cron"}, metadata={"origin": "cron"}
    )
    wait_until(lambda: len(client.runs.list(thread["thread_id"])) >= 2)
    client.crons.update(cron["cron_id"], enabled=False)
    runs = client.runs.list(thread["thread_id"])
    assert {r["kwargs"]["input"]["topic"] for r in runs} == {"cron"}
    assert all(r["metadata"]["origin"] == "cron" for r in runs)
    assert all(r["kwargs"]["config"]["configurable"]["cron_id"] == cron["cron_id"] for r in runs)
    wait_until(lambda: client.threads.get(thread["thread_id"])["status"] == "idle")
    assert client.threads.get(thread["thread_id"])["values"]["joke"] == "This is a joke about cron and cats"
    # Disabled: no more runs (one already claimed may still start, in a look begun before).
    ticks_later(ticking, client, 0)
    settled = len(client.runs.list(thread["thread_id"], limit=100))
    ticks_later(ticking, client, 1)
    assert len(client.runs.list(thread["thread_id"], limit=100)) == settled


def test_a_stateless_cron_runs_each_tick_on_a_new_thread(ticking: GatewayProcess) -> None:
    client = get_sync_client(url=ticking.http_url)
    marker = f"stateless-{time.time_ns()}"
    kept = client.crons.create(
        "agent", schedule=EVERY_SECOND, input={"topic": "s"}, metadata={"marker": marker}, on_run_completed="keep"
    )
    wait_until(lambda: client.threads.count(metadata={"marker": marker}) >= 2)
    client.crons.delete(kept["cron_id"])
    threads = client.threads.search(metadata={"marker": marker}, limit=100)
    assert len({t["thread_id"] for t in threads}) == len(threads) >= 2
    wait_until(lambda: all(t["status"] == "idle" for t in client.threads.search(metadata={"marker": marker})))
    # Deleted with the run (the default): the threads are gone, the runs still happened.
    gone = f"gone-{time.time_ns()}"
    deleted = client.crons.create("agent", schedule=EVERY_SECOND, input={"topic": "d"}, metadata={"marker": gone})
    wait_until(lambda: len(fired(ticking, deleted["cron_id"])) >= 2)
    client.crons.delete(deleted["cron_id"])
    ticks_later(ticking, client, 0)  # past a run it may have claimed as it was deleted
    wait_until(lambda: client.threads.count(metadata={"marker": gone}) == 0)
    assert len(set(fired(ticking, deleted["cron_id"]))) >= 2
    assert client.threads.count(metadata={"marker": gone}) == 0


def test_a_cron_past_its_end_time_or_disabled_does_not_fire(ticking: GatewayProcess) -> None:
    client = get_sync_client(url=ticking.http_url)
    ended, disabled = client.threads.create(), client.threads.create()
    soon = datetime.now(UTC) + timedelta(seconds=1)
    client.crons.create_for_thread(ended["thread_id"], "agent", schedule=EVERY_SECOND, input={}, end_time=soon)
    client.crons.create_for_thread(disabled["thread_id"], "agent", schedule=EVERY_SECOND, input={}, enabled=False)
    # Three whole looks at moments of the schedule, at which both were due but for the end time
    # and being disabled (tests/storage/test_cron_ticks.py counts them exactly on a clock of its own).
    ticks_later(ticking, client, 3)
    assert len(client.runs.list(ended["thread_id"], limit=100)) <= 2
    assert client.runs.list(disabled["thread_id"]) == []


def test_schedules_are_read_in_their_timezone(ticking: GatewayProcess) -> None:
    client = get_sync_client(url=ticking.http_url)
    tokyo = client.crons.create("agent", schedule="0 9 * * *", timezone="Asia/Tokyo", enabled=False)
    paris = client.crons.create("agent", schedule="0 9 * * *", timezone="Europe/Paris", enabled=False)
    utc = client.crons.create("agent", schedule="0 9 * * *", enabled=False)
    hours = {c["cron_id"]: datetime.fromisoformat(c["next_run_date"]).hour for c in (tokyo, paris, utc)}
    assert hours[tokyo["cron_id"]] == 0 and hours[paris["cron_id"]] in (7, 8) and hours[utc["cron_id"]] == 9
    moved = client.crons.update(utc["cron_id"], timezone="America/New_York")
    assert datetime.fromisoformat(moved["next_run_date"]).hour in (13, 14)
    for cron in (tokyo, paris, utc):
        client.crons.delete(cron["cron_id"])


def test_cron_errors_name_the_field(ticking: GatewayProcess) -> None:
    with httpx.Client(base_url=ticking.http_url) as http:
        answers = {
            "schedule": http.post("/runs/crons", json={"assistant_id": "agent", "schedule": "61 * * * *"}),
            "timezone": http.post(
                "/runs/crons", json={"assistant_id": "agent", "schedule": "* * * * *", "timezone": "X"}
            ),
            "end_time": http.post(
                "/runs/crons", json={"assistant_id": "agent", "schedule": "* * * * *", "end_time": "soon"}
            ),
            "input": http.post(
                "/runs/crons", json={"assistant_id": "agent", "schedule": "* * * * *", "stream_mode": "bogus"}
            ),
            "empty": http.patch("/runs/crons/00000000-0000-0000-0000-000000000000", json={}),
            "missing": http.patch("/runs/crons/00000000-0000-0000-0000-000000000000", json={"enabled": True}),
            "sort": http.post("/runs/crons/search", json={"sort_by": "schedule"}),
        }
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "schedule": 422,
        "timezone": 422,
        "end_time": 422,
        "input": 422,
        "empty": 400,
        "missing": 404,
        "sort": 422,
    }
    assert "schedule" in answers["schedule"].json()["detail"] and "stream_mode" in answers["input"].json()["detail"]


def test_a_runs_config_that_is_not_an_object_is_refused_naming_it(ticking: GatewayProcess) -> None:
    cron = {"assistant_id": "agent", "schedule": "0 0 * * *"}
    with httpx.Client(base_url=ticking.http_url) as http:
        thread_id = http.post("/threads", json={}).json()["thread_id"]
        cron_id = http.post("/runs/crons", json=cron).json()["cron_id"]
        for config in ("x", [None], {"configurable": [1]}):
            for answer in (
                http.post("/runs/crons", json={**cron, "config": config}),
                http.post(f"/threads/{thread_id}/runs/crons", json={**cron, "config": config}),
                http.patch(f"/runs/crons/{cron_id}", json={"config": config}),
            ):
                assert answer.status_code == 422, (config, answer.text)
                assert "config" in answer.json()["detail"]


def test_end_times_before_the_year_1000_are_kept_and_past_the_calendar_refused(ticking: GatewayProcess) -> None:
    cron = {"assistant_id": "agent", "schedule": "0 0 * * *"}
    with httpx.Client(base_url=ticking.http_url) as http:
        made = http.post("/runs/crons", json={**cron, "end_time": "0641-04-10T07:50:46Z"})
        assert made.status_code == 200, made.text
        cron_id = made.json()["cron_id"]
        patched = http.patch(f"/runs/crons/{cron_id}", json={"end_time": "0099-01-01T00:00:00Z"})
        assert patched.status_code == 200, patched.text
        assert http.get(f"/runs/crons/{cron_id}").json()["end_time"].startswith("0099-01-01T00:00:00")
        assert http.post("/runs/crons/search", json={}).status_code == 200
        # Its UTC would be in year 0.
        refused = http.post("/runs/crons", json={**cron, "end_time": "0001-01-01T00:00:00+05:00"})
        assert refused.status_code == 422 and "end_time" in refused.json()["detail"]
