"""The HTTP routes' backend when the run core lives in the same process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from gateway._utils import is_uuid, run_base_ms
from gateway.core.channel import Event
from gateway.core.gateway import Gateway
from gateway.core.runs import ActiveRun, RunCreate, parse_event_id
from gateway.core.thread_stream import parse_thread_event_id, stream_modes
from gateway.errors import Conflict, InvalidArgument, NotFound
from gateway.http._backend import Json, RunOutcome, RunStream
from gateway.http._objects import run_json
from gateway.http._sse import event_name, frame
from gateway.http._utils import iterating
from gateway.storage import RunRecord

# Runs that `POST /runs/cancel {"status": ...}` looks at.
_CANCELLABLE = {"pending": ("pending",), "running": ("running",), "all": ("pending", "running")}


def _frames(base_ms: int, batch: Sequence[Event]) -> bytes:
    # The core's "end" marks the end of the run's channel; the SSE stream just closes.
    return b"".join(frame(event_name(e.name, e.ns), e.data, f"{base_ms}-{e.seq}") for e in batch if e.name != "end")


async def _sse(base_ms: int, batches: AsyncIterator[Sequence[Event]]) -> AsyncIterator[bytes]:
    """A run's batches of events as SSE bytes, one chunk per batch."""
    async with iterating(batches) as events:
        async for batch in events:
            if chunk := _frames(base_ms, batch):
                yield chunk


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield


def _check_ids(thread_id: str | None, run_id: str) -> None:
    if thread_id is not None and not is_uuid(thread_id):
        raise InvalidArgument(f"Invalid thread ID: {thread_id!r} must be a UUID")
    if not is_uuid(run_id):
        raise InvalidArgument(f"Invalid run ID: {run_id!r} must be a UUID")


class LocalBackend:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    # Runs

    def _body(self, run: ActiveRun, after: int | None, modes: list[str] | None) -> AsyncIterator[bytes]:
        return _sse(run.channel.base_ms, self.gw.runs.events(run, after=after, modes=modes))

    def _logged(self, record: RunRecord, after: int, modes: list[str] | None) -> AsyncIterator[bytes]:
        return _sse(run_base_ms(record.run_id), self.gw.runs.logged_events(record, after=after, modes=modes))

    def _canceller(self, run: ActiveRun, cancel: bool) -> Any:
        return (lambda: self.gw.runs.cancel_soon(run)) if cancel else None

    async def _find(self, thread_id: str | None, run_id: str) -> ActiveRun | RunRecord:
        """The run in memory, else its stored record. Stateless runs (thread_id None) are found
        while the core still holds them, since their temporary thread is deleted at their end."""
        _check_ids(thread_id, run_id)
        live = self.gw.runs.live(run_id)
        if live is not None and (thread_id is None or live.thread_id == thread_id):
            return live
        if thread_id is None:
            raise NotFound(f"Run {run_id} not found.")
        return await self.gw.runs.get(thread_id, run_id)

    async def create_run(self, req: RunCreate) -> Json:
        run = await self.gw.runs.create(req)
        return run_json(run.record)

    async def stream_run(self, req: RunCreate) -> RunStream:
        run = await self.gw.runs.create(req)
        # From seq 0: every event since the run was created, even if it started meanwhile.
        body = self._body(run, 0, None)
        return RunStream(run.run_id, run.thread_id, body, self._canceller(run, req.on_disconnect == "cancel"))

    async def join_stream(
        self,
        thread_id: str | None,
        run_id: str,
        *,
        last_event_id: str | None,
        modes: list[str] | None,
        cancel_on_disconnect: bool,
    ) -> RunStream:
        parse_event_id(last_event_id)  # a malformed id fails before the lookup
        found = await self._find(thread_id, run_id)
        after = parse_event_id(last_event_id, run_id)
        if isinstance(found, RunRecord):
            # Finished and no longer in memory: a resumable run's events are in its log.
            if after is None or not found.kwargs.get("resumable"):
                return RunStream(run_id, found.thread_id, _nothing())
            return RunStream(run_id, found.thread_id, self._logged(found, after, modes))
        return RunStream(
            run_id, found.thread_id, self._body(found, after, modes), self._canceller(found, cancel_on_disconnect)
        )

    async def wait_run(self, req: RunCreate) -> RunOutcome:
        run = await self.gw.runs.create(req)
        return RunOutcome(
            run.run_id,
            run.thread_id,
            lambda: self.gw.runs.wait_result(run),
            self._canceller(run, req.on_disconnect == "cancel"),
        )

    async def join_run(self, thread_id: str, run_id: str, *, cancel_on_disconnect: bool) -> RunOutcome:
        found = await self._find(thread_id, run_id)
        if isinstance(found, RunRecord):
            record = found
            return RunOutcome(run_id, thread_id, lambda: self.gw.runs.stored_result(record))
        run = found
        return RunOutcome(
            run_id, thread_id, lambda: self.gw.runs.wait_result(run), self._canceller(run, cancel_on_disconnect)
        )

    async def get_run(self, thread_id: str, run_id: str) -> Json:
        _check_ids(thread_id, run_id)
        return run_json(await self.gw.runs.get(thread_id, run_id))

    async def list_runs(self, thread_id: str, *, status: str | None, limit: int, offset: int) -> list[Json]:
        records = await self.gw.runs.list(thread_id, status=status, limit=limit, offset=offset)
        return [run_json(r) for r in records]

    async def cancel_run(self, thread_id: str, run_id: str, *, action: str, wait: bool) -> RunOutcome | None:
        _check_ids(thread_id, run_id)
        await self.gw.runs.cancel(thread_id, run_id, action=action)
        if not wait:
            return None
        return await self.join_run(thread_id, run_id, cancel_on_disconnect=False)

    async def cancel_runs(
        self, *, thread_id: str | None, run_ids: list[str] | None, status: str | None, action: str
    ) -> None:
        runs = self.gw.runs
        if status is not None:
            targets = [(r.thread_id, r.run_id) for r in await runs.storage.runs_with_status(_CANCELLABLE[status])]
        else:
            assert thread_id is not None and run_ids is not None
            for run_id in run_ids:
                _check_ids(thread_id, run_id)
            targets = [(thread_id, run_id) for run_id in run_ids]
        found = 0
        for tid, rid in targets:
            try:
                await runs.cancel(tid, rid, action=action)
                found += 1
            except Conflict:
                found += 1  # it ended meanwhile
            except NotFound:
                pass
        if targets and not found and status is None:
            raise NotFound(f"No runs found to cancel: {', '.join(run_ids or ())} on thread {thread_id}.")

    # Threads

    async def create_thread(self, thread_id: str | None, metadata: Json, if_exists: str) -> Json:
        record = await self.gw.threads.create(thread_id=thread_id, metadata=metadata, if_exists=if_exists)
        return record.to_json()

    async def get_thread(self, thread_id: str) -> Json:
        return (await self.gw.threads.get(thread_id)).to_json()

    async def patch_thread(self, thread_id: str, metadata: Json) -> Json:
        return (await self.gw.threads.patch(thread_id, metadata=metadata)).to_json()

    async def delete_thread(self, thread_id: str) -> None:
        await self.gw.threads.delete(thread_id, busy=self.gw.thread_busy(thread_id))

    async def search_threads(self, **filters: Any) -> list[Json]:
        return [t.to_json() for t in await self.gw.threads.search(**filters)]

    async def count_threads(self, **filters: Any) -> int:
        return await self.gw.threads.count(**filters)

    async def thread_state(self, thread_id: str, *, checkpoint: Json | None, subgraphs: bool) -> Json:
        checkpoint_id = (checkpoint or {}).get("checkpoint_id")
        return await self.gw.threads.state(thread_id, checkpoint_id=checkpoint_id or None, subgraphs=subgraphs)

    async def update_thread_state(
        self, thread_id: str, values: Any, *, as_node: str | None, checkpoint: Json | None
    ) -> Json:
        config, state = await self.gw.threads.update_state(
            thread_id, values, as_node=as_node, checkpoint=checkpoint, busy=self.gw.thread_busy(thread_id)
        )
        self.gw.thread_streams.state_updated(thread_id, state)
        # `configurable` and `checkpoint_id` are the Agent Server's deprecated spellings.
        return {"checkpoint": config, "configurable": config, "checkpoint_id": config.get("checkpoint_id")}

    async def thread_history(
        self, thread_id: str, *, limit: int, before: str | None, metadata: Json | None, checkpoint: Json | None
    ) -> list[Json]:
        return await self.gw.threads.history(
            thread_id, limit=limit, before=before, metadata=metadata, checkpoint=checkpoint
        )

    async def thread_stream(
        self, thread_id: str, *, last_event_id: str | None, modes: list[str]
    ) -> AsyncIterator[bytes]:
        wanted = stream_modes(modes)
        after = parse_thread_event_id(last_event_id)
        await self.gw.threads.get(thread_id)
        streams = self.gw.thread_streams

        async def body() -> AsyncIterator[bytes]:
            async with iterating(streams.subscribe(thread_id, after=after, modes=wanted)) as batches:
                async for batch in batches:
                    yield b"".join(frame(event_name(e.name, e.ns), e.data, e.event_id) for e in batch)

        return body()

    # Assistants

    async def get_assistant(self, assistant_id: str) -> Json:
        return (await self.gw.assistants.get(assistant_id)).to_json()

    async def search_assistants(
        self, *, graph_id: str | None, name: str | None, metadata: Json | None, limit: int, offset: int
    ) -> list[Json]:
        found = await self.gw.assistants.search(
            graph_id=graph_id, name=name, metadata=metadata, limit=limit, offset=offset
        )
        return [a.to_json() for a in found]

    async def count_assistants(self, *, graph_id: str | None, name: str | None, metadata: Json | None) -> int:
        found = await self.gw.assistants.search(
            graph_id=graph_id, name=name, metadata=metadata, limit=len(self.gw.assistants.graphs) + 1_000, offset=0
        )
        return len(found)

    async def assistant_graph(self, assistant_id: str, *, xray: bool | int) -> Json:
        return await self.gw.assistants.graph_json(assistant_id, xray=xray)

    async def assistant_schemas(self, assistant_id: str) -> Json:
        return await self.gw.assistants.schemas(assistant_id)
