"""Rows as both backends read them (JSON as text, graph data as text or bytes) into records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from gateway.shared.records import AssistantRecord, CronRecord, RunRecord, ThreadRecord


def _raw(value: str | bytes | memoryview) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def thread_row(row: Sequence[Any]) -> ThreadRecord:
    return ThreadRecord(
        thread_id=row[0],
        created_at=row[1],
        updated_at=row[2],
        state_updated_at=row[3],
        metadata=orjson.loads(row[4]),
        status=row[5],
        config=orjson.loads(row[6]),
        values=_raw(row[7]),
        interrupts=_raw(row[8]),
        error=_raw(row[9]),
    )


def run_row(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        thread_id=row[1],
        assistant_id=row[2],
        created_at=row[3],
        updated_at=row[4],
        status=row[5],
        metadata=orjson.loads(row[6]),
        multitask_strategy=row[7],
        kwargs=orjson.loads(row[8]),
        attempt=row[9],
    )


def assistant_row(row: Sequence[Any]) -> AssistantRecord:
    return AssistantRecord(
        assistant_id=row[0],
        graph_id=row[1],
        name=row[2],
        created_at=row[3],
        updated_at=row[4],
        config=orjson.loads(row[5]),
        context=orjson.loads(row[6]),
        metadata=orjson.loads(row[7]),
        version=row[8],
        description=row[9],
    )


def _when(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def cron_row(row: Sequence[Any]) -> CronRecord:
    next_run_date = _when(row[7])
    assert next_run_date is not None
    return CronRecord(
        cron_id=row[0],
        assistant_id=row[1],
        thread_id=row[2],
        user_id=row[3],
        schedule=row[4],
        timezone=row[5],
        end_time=_when(row[6]),
        next_run_date=next_run_date,
        payload=orjson.loads(row[8]),
        metadata=orjson.loads(row[9]),
        on_run_completed=row[10],
        enabled=bool(row[11]),
        created_at=row[12],
        updated_at=row[13],
    )
