"""Crons: durable schedules of runs. A cron keeps a run-create body (`payload`) and a cron
expression (croniter's, with an optional sixth field for seconds) in a timezone, until an
optional end time; at each tick it creates a run from the payload, on its thread or, for a
stateless cron, on a new thread that is deleted after the run (or kept: `on_run_completed`).

Every process ticks: it lists the crons that are due and claims each one's tick by moving its
`next_run_date` from that tick to the next in one conditional write (storage.claim_cron), so
that however many processes share the database, each tick fires once. A process that dies
between the claim and the run's creation loses that tick, as the Agent Server's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from gateway.auth import Caller, acting_as, as_user, current_caller
from gateway.core.access import Access, metadata_of
from gateway.core.assistants import Assistants
from gateway.core.service import RunService
from gateway.shared.errors import BadRequest, GatewayError, InvalidArgument, NotFound, shown
from gateway.shared.limits import check_filter, check_metadata
from gateway.shared.records import CRON_SORT_KEYS, CronChange, CronFilter, CronRecord, OnCompletion, RunCreate
from gateway.shared.run_body import run_create, type_name
from gateway.shared.util import is_uuid, uuid7
from gateway.storage import Storage

logger = logging.getLogger("gateway.crons")

# Fields of a cron's body that are the cron's, not its runs'.
_CRON_FIELDS = ("schedule", "timezone", "end_time", "enabled", "on_run_completed")
# Crons a process fires at most per tick; more wait for its next tick.
_BATCH = 100


def _utc_now() -> datetime:
    return datetime.now(UTC)


def next_tick(schedule: str, after: datetime, timezone: str | None) -> datetime:
    """The schedule's first moment after `after`, in UTC; the expression is read in `timezone`."""
    base = after.astimezone(ZoneInfo(timezone)) if timezone else after.astimezone(UTC)
    moment: datetime = croniter(schedule, base).get_next(datetime)
    return moment.astimezone(UTC)


def _schedule(value: Any) -> str:
    if not isinstance(value, str) or not croniter.is_valid(value):
        raise InvalidArgument(
            f"Invalid cron schedule: {shown(value)}. Ensure the schedule uses the standard cron format "
            "(minute hour day_of_month month day_of_week). Example: '*/5 * * * *' for every 5 minutes."
        )
    return value


def _timezone(value: Any) -> str | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise KeyError(value)
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, KeyError, ValueError):
        raise InvalidArgument(
            f"Invalid timezone: {shown(value)}. Use IANA timezone format (e.g. 'America/New_York')."
        ) from None
    return value


def _moment(value: Any, name: str) -> datetime:
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        moment = datetime.fromisoformat(value)
        moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        # Kept in UTC: a moment whose UTC falls outside years 1 to 9999 has no date there.
        moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument(f"{name} must be an ISO 8601 date and time, not {shown(value)}") from None
    return moment


def _flag(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise InvalidArgument(f"{name} must be a boolean")
    return value


def _on_completion(value: Any) -> OnCompletion | None:
    if value is None:
        return None
    if value == "delete":
        return "delete"
    if value == "keep":
        return "keep"
    raise InvalidArgument(f"on_run_completed: {shown(value)} is not one of 'delete', 'keep'")


def _with_cron_id(config: Any, cron_id: str) -> dict[str, Any]:
    """The runs' `config` with the cron's id among its `configurable`."""
    config = config or {}
    if not isinstance(config, dict):
        raise InvalidArgument(f"config must be an object, not {type_name(config)}")
    configurable = config.get("configurable") or {}
    if not isinstance(configurable, dict):
        raise InvalidArgument(f"config.configurable must be an object, not {type_name(configurable)}")
    return {**config, "configurable": {**configurable, "cron_id": cron_id}}


def _check_id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not is_uuid(value):
        raise InvalidArgument(f"{name} {shown(value)} is not a UUID", field=name)
    return value


def run_request(cron: CronRecord) -> RunCreate:
    """The run a tick of the cron creates, as the Agent Server makes it of the payload."""
    payload = {k: v for k, v in cron.payload.items() if k not in _CRON_FIELDS}
    if cron.on_run_completed == "keep":
        payload.setdefault("on_completion", "keep")
    payload["metadata"] = {**cron.metadata, **(payload.get("metadata") or {})}
    if payload.get("context"):
        # The cron's id rides in `configurable`, which a run with a context may not have.
        config = dict(payload.get("config") or {})
        configurable = {k: v for k, v in (config.get("configurable") or {}).items() if k != "cron_id"}
        payload["config"] = {**config, "configurable": configurable} if configurable else config
        if not configurable:
            payload["config"].pop("configurable", None)
    return run_create(payload, thread_id=cron.thread_id, streaming=False)


class Crons:
    def __init__(
        self,
        storage: Storage,
        assistants: Assistants,
        runs: RunService,
        *,
        access: Access | None = None,
        interval: float = 5.0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        """`interval`: seconds between looks for due crons; `clock`: the time the schedules are
        read at (the machine's; tests pass one they move, to tick without waiting)."""
        self._storage = storage
        self._assistants = assistants
        self._runs = runs
        self._access = access or Access(None, storage)
        self._interval = interval
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    # Creating and changing crons

    async def create(self, body: dict[str, Any], *, thread_id: str | None = None) -> CronRecord:
        """A cron of the run-create `body` with its `schedule` (and `timezone`, `end_time`,
        `enabled`, and for a stateless one `on_run_completed`)."""
        if thread_id is not None:
            _check_id(thread_id, "thread_id")
        schedule = _schedule(body.get("schedule"))
        timezone = _timezone(body.get("timezone"))
        end_time = _moment(body["end_time"], "end_time") if body.get("end_time") is not None else None
        enabled = _flag(body, "enabled")
        on_run_completed = None if thread_id is not None else _on_completion(body.get("on_run_completed")) or "delete"
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise InvalidArgument("metadata must be an object")
        check_metadata("metadata", metadata)
        cron_id = uuid7()
        caller = current_caller()
        user_id = caller.user.identity if caller is not None else ""
        payload = {**body, "config": _with_cron_id(body.get("config"), cron_id)}
        value: dict[str, Any] = {
            "payload": payload,
            "schedule": schedule,
            "cron_id": UUID(cron_id),
            "thread_id": UUID(thread_id) if thread_id else None,
            "user_id": user_id,
            "end_time": end_time,
            "metadata": dict(metadata),
        }
        await self._access.check("crons", "create", value)
        metadata = metadata_of(value)
        if "assistant_id" not in payload:
            raise InvalidArgument("assistant_id is required")
        assistant = await self._assistant(payload["assistant_id"])
        payload["assistant_id"] = assistant
        if thread_id is not None:
            access = await self._access.check("threads", "read", {"thread_id": UUID(thread_id), "metadata": metadata})
            if await self._storage.get_thread(thread_id, access=access) is None:
                raise NotFound(
                    f"Thread with ID '{thread_id}' not found. Please verify the ID is correct and the thread "
                    "hasn't been deleted or expired.",
                    resource="thread",
                    id=thread_id,
                )
        now = self._clock()
        cron = CronRecord(
            cron_id=cron_id,
            assistant_id=assistant,
            thread_id=thread_id,
            schedule=schedule,
            payload=payload,
            next_run_date=next_tick(schedule, now, timezone),
            created_at=now.isoformat(),
            updated_at=now.isoformat(),
            end_time=end_time,
            timezone=timezone,
            user_id=user_id,
            metadata=metadata,
            on_run_completed=on_run_completed,
            enabled=True if enabled is None else enabled,
        )
        # A payload no run can be made of fails now, not at every tick.
        run_request(cron)
        await self._storage.create_cron(cron)
        return cron

    async def _assistant(self, assistant_id: Any) -> str:
        if not isinstance(assistant_id, str):
            raise InvalidArgument("assistant_id must be a string: an assistant UUID or a graph name")
        try:
            record, _ = await self._assistants.resolve(assistant_id)
        except NotFound as exc:
            if exc.http_status != 404:
                raise  # a name that is no graph's, refused as the Agent Server does
            raise NotFound(f"Assistant '{assistant_id}' not found", resource="assistant", id=assistant_id) from None
        if record.metadata.get("created_by") != "system":
            access = await self._access.check("assistants", "read", {"assistant_id": UUID(record.assistant_id)})
            if access is not None and await self._storage.get_assistant(record.assistant_id, access=access) is None:
                raise NotFound(f"Assistant '{assistant_id}' not found", resource="assistant", id=assistant_id)
        return record.assistant_id

    async def get(self, cron_id: str) -> CronRecord:
        _check_id(cron_id, "cron_id")
        access = await self._access.check("crons", "read", {"cron_id": UUID(cron_id)})
        cron = await self._storage.get_cron(cron_id, access=access)
        if cron is None:
            raise NotFound(f"Cron '{cron_id}' not found", resource="cron", id=cron_id)
        return cron

    async def update(self, cron_id: str, body: dict[str, Any]) -> CronRecord:
        """Changes what `body` sets: the schedule (and so the next run), timezone, end time
        (null clears it), enabled, on_run_completed, metadata (merged); its run-create fields
        are merged into the payload."""
        _check_id(cron_id, "cron_id")
        if not body:
            raise BadRequest("Request body cannot be empty")
        schedule = _schedule(body["schedule"]) if body.get("schedule") is not None else None
        timezone = _timezone(body.get("timezone"))
        end_time = _moment(body["end_time"], "end_time") if body.get("end_time") is not None else None
        enabled = _flag(body, "enabled")
        on_run_completed = _on_completion(body.get("on_run_completed"))
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidArgument("metadata must be an object")
        check_metadata("metadata", metadata)
        value: dict[str, Any] = {
            "cron_id": UUID(cron_id),
            "schedule": schedule,
            "end_time": end_time,
            "enabled": enabled,
            "on_run_completed": on_run_completed,
            "payload": dict(body),
        }
        if metadata is not None:
            value["metadata"] = dict(metadata)
        access = await self._access.check("crons", "update", value)
        current = await self._storage.get_cron(cron_id, access=access)
        if current is None:
            raise NotFound(f"Cron '{cron_id}' not found", resource="cron", id=cron_id)
        payload = {**current.payload, **body, "assistant_id": current.payload.get("assistant_id", current.assistant_id)}
        payload["config"] = _with_cron_id(payload.get("config"), cron_id)
        next_run_date = None
        if schedule is not None or timezone is not None or enabled and not current.enabled:
            # A new schedule, a new timezone or a cron enabled again: its next run from now on.
            next_run_date = next_tick(schedule or current.schedule, self._clock(), timezone or current.timezone)
        change = CronChange(
            schedule=schedule,
            timezone=timezone,
            next_run_date=next_run_date,
            end_time=end_time,
            clear_end_time="end_time" in body and body["end_time"] is None,
            enabled=enabled,
            on_run_completed=on_run_completed,
            payload=payload,
            metadata={**current.metadata, **metadata_of(value)} if metadata is not None else None,
        )
        # What the cron would hold, not only what this request adds to it.
        check_metadata("metadata", change.metadata)
        run_request(replace(current, payload=payload, metadata=change.metadata or current.metadata))
        updated = await self._storage.update_cron(cron_id, change, access=access)
        if updated is None:
            raise NotFound(f"Cron '{cron_id}' not found", resource="cron", id=cron_id)
        return updated

    async def delete(self, cron_id: str) -> None:
        _check_id(cron_id, "cron_id")
        access = await self._access.check("crons", "delete", {"cron_id": UUID(cron_id)})
        if not await self._storage.delete_cron(cron_id, access=access):
            raise NotFound(f"Cron '{cron_id}' not found", resource="cron", id=cron_id)

    # Finding crons

    async def _filter(
        self,
        *,
        assistant_id: str | None,
        thread_id: str | None,
        enabled: bool | None,
        metadata: dict[str, Any] | None,
        limit: int,
        offset: int,
    ) -> CronFilter:
        if assistant_id is not None:
            assistant_id = _check_id(assistant_id, "assistant_id")
        if thread_id is not None:
            thread_id = _check_id(thread_id, "thread_id")
        check_filter("metadata", metadata)
        value: dict[str, Any] = {
            "assistant_id": UUID(assistant_id) if assistant_id else None,
            "thread_id": UUID(thread_id) if thread_id else None,
            "limit": limit,
            "offset": offset,
            "metadata": dict(metadata or {}),
        }
        access = await self._access.check("crons", "search", value)
        if thread_id is not None:
            thread_access = await self._access.check("threads", "read", {"thread_id": UUID(thread_id)})
        else:
            thread_access = await self._access.check("threads", "search", {})
        return CronFilter(
            assistant_id=assistant_id,
            thread_id=thread_id,
            enabled=enabled,
            metadata=metadata_of(value) or None,
            access=access,
            thread_access=thread_access,
        )

    async def search(
        self,
        *,
        assistant_id: str | None = None,
        thread_id: str | None = None,
        enabled: bool | None = None,
        metadata: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> list[CronRecord]:
        if sort_by is not None and sort_by.lower() not in CRON_SORT_KEYS:
            raise InvalidArgument(
                f"Invalid sort_by field: {shown(sort_by)}. Valid options are: {', '.join(CRON_SORT_KEYS)}"
            )
        if sort_order is not None and sort_order.lower() not in ("asc", "desc"):
            raise InvalidArgument(f"sort_order {shown(sort_order)} is not one of: asc, desc")
        where = await self._filter(
            assistant_id=assistant_id,
            thread_id=thread_id,
            enabled=enabled,
            metadata=metadata,
            limit=limit,
            offset=offset,
        )
        return await self._storage.search_crons(
            where,
            limit=limit,
            offset=offset,
            sort_by=(sort_by or "created_at").lower(),
            descending=(sort_order or "desc").lower() != "asc",
        )

    async def count(
        self,
        *,
        assistant_id: str | None = None,
        thread_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> int:
        where = await self._filter(
            assistant_id=assistant_id, thread_id=thread_id, enabled=None, metadata=metadata, limit=0, offset=0
        )
        return await self._storage.count_crons(where)

    # Firing

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick_forever(), name="crons")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _tick_forever(self) -> None:
        while True:
            try:
                fired = await self.tick()
            except Exception:
                logger.exception("looking for due crons failed; retrying")
                fired = 0
            if fired < _BATCH:
                await asyncio.sleep(self._interval)

    async def tick(self) -> int:
        """Fires every cron that is due and whose tick this process claims; returns how many
        were due."""
        now = self._clock()
        due = await self._storage.due_crons(now, _BATCH)
        for cron in due:
            try:
                following = next_tick(cron.schedule, max(now, cron.next_run_date), cron.timezone)
            except (ValueError, KeyError, ZoneInfoNotFoundError) as exc:
                logger.error("cron %s has a schedule that cannot be read: %s", cron.cron_id, exc)
                continue
            if await self._storage.claim_cron(cron.cron_id, cron.next_run_date, following):
                await self._fire(cron)
        return len(due)

    async def _fire(self, cron: CronRecord) -> None:
        try:
            request = run_request(cron)
            if self._access.enabled:
                # The run is the cron's creator's, as if they had created it now.
                with acting_as(Caller(as_user(cron.user_id or ""), ())):
                    run = await self._runs.create(request)
            else:
                run = await self._runs.create(request)
        except GatewayError as exc:
            logger.warning("cron %s could not create its run: %s", cron.cron_id, exc.message)
            return
        except Exception:
            logger.exception("cron %s could not create its run", cron.cron_id)
            return
        logger.info(
            "cron %s created run %s on thread %s",
            cron.cron_id,
            run.run_id,
            run.thread_id,
            extra={"cron_id": cron.cron_id},
        )
