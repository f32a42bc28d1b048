"""Crons in a deployment of several replicas on one Postgres and Redis: each tick is claimed by
one replica's conditional write, so it fires once however many replicas look for due crons."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from langgraph_sdk import get_sync_client

from tests.scale.conftest import Replica

CRONS = 12


def test_each_tick_fires_once_across_replicas(replica: Replica) -> None:
    # Three replicas looking every 50 ms, and a dozen crons due at each tick: each replica's
    # list of due crons overlaps the others' while it fires them, so without the claim a tick
    # would fire on two or three replicas.
    with ThreadPoolExecutor(3) as starting:
        replicas = list(starting.map(lambda _: replica("--cron-interval", "0.05"), range(3)))
    clients = [get_sync_client(url=r.http_url) for r in replicas]
    threads = [clients[0].threads.create()["thread_id"] for _ in range(CRONS)]
    started = time.monotonic()
    crons = [
        # croniter reads a sixth field as the seconds: every 2 s.
        clients[i % 3].crons.create_for_thread(thread_id, "agent", schedule="* * * * * */2", input={"topic": "t"})
        for i, thread_id in enumerate(threads)
    ]
    # Three ticks of each (6 s of the schedule), on whichever replicas claimed them.
    deadline = started + 60
    while not all(len(clients[1].runs.list(thread_id, limit=100)) >= 3 for thread_id in threads):
        assert time.monotonic() < deadline, "the crons did not fire"
        time.sleep(0.2)
    for cron in crons:
        clients[2].crons.update(cron["cron_id"], enabled=False)
    elapsed = time.monotonic() - started
    time.sleep(1)
    for thread_id in threads:
        runs = clients[1].runs.list(thread_id, limit=100)
        created = sorted(datetime.fromisoformat(r["created_at"]) for r in runs)
        gaps = [(later - earlier).total_seconds() for earlier, later in zip(created, created[1:], strict=False)]
        # The 3 ticks waited for, at most one per 2 s begun, and never two close together.
        assert 3 <= len(runs) <= elapsed / 2 + 1, created
        assert all(gap > 1.0 for gap in gaps), gaps
