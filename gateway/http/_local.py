"""The HTTP routes' backend when the run core lives in the same process: each method calls the
core's id-addressed services and turns what they return into JSON or SSE bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import langgraph.version
from starlette.applications import Starlette
from starlette.middleware import Middleware

from gateway import __version__
from gateway.core.gateway import Gateway
from gateway.core.protocol_stream import Session, ThreadProtocol
from gateway.core.thread_stream import parse_thread_event_id, stream_modes
from gateway.http._backend import Json, RunOutcome, RunStream
from gateway.http._custom_auth import AuthMiddleware
from gateway.http._objects import info, run_json
from gateway.http._sse import frame
from gateway.http._utils import iterating
from gateway.http.app import WebApi, build_app
from gateway.process.health import Health
from gateway.shared.protocol import Command
from gateway.shared.records import Event, RunCreate, RunStatus
from gateway.shared.settings import MAX_BODY_BYTES
from gateway.shared.util import run_base_ms
from gateway.wire.events import event_name

# Runs that `POST /runs/cancel {"status": ...}` cancels.
_CANCELLABLE: dict[str, tuple[RunStatus, ...]] = {
    "pending": ("pending",),
    "running": ("running",),
    "all": ("pending", "running"),
}


def _frames(base_ms: int, batch: Sequence[Event]) -> bytes:
    # The core's "end" marks the end of the run's stream; the SSE stream just closes.
    return b"".join(frame(event_name(e.name, e.ns), e.data, f"{base_ms}-{e.seq}") for e in batch if e.name != "end")


async def _sse(run_id: str, batches: AsyncIterator[Sequence[Event]]) -> AsyncIterator[bytes]:
    """A run's batches of events as SSE bytes, one chunk per batch."""
    base_ms = run_base_ms(run_id)
    async with iterating(batches) as events:
        async for batch in events:
            if chunk := _frames(base_ms, batch):
                yield chunk


class LocalBackend:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.runs = gateway.runs
        self.store = gateway.store

    # Runs

    async def create_run(self, req: RunCreate) -> Json:
        return run_json(await self.runs.create(req))

    async def stream_run(self, req: RunCreate) -> RunStream:
        record, events = await self.runs.stream(req)
        return RunStream(record.run_id, record.thread_id, _sse(record.run_id, events))

    async def join_stream(
        self,
        thread_id: str | None,
        run_id: str,
        *,
        last_event_id: str | None,
        modes: list[str] | None,
        cancel_on_disconnect: bool,
    ) -> RunStream:
        record, events = await self.runs.join(
            thread_id, run_id, last_event_id=last_event_id, modes=modes, cancel_on_disconnect=cancel_on_disconnect
        )
        return RunStream(run_id, record.thread_id, _sse(run_id, events))

    async def wait_run(self, req: RunCreate) -> RunOutcome:
        record, outcome = await self.runs.wait(req)
        return RunOutcome(record.run_id, record.thread_id, lambda: outcome)

    async def join_run(self, thread_id: str, run_id: str, *, cancel_on_disconnect: bool) -> RunOutcome:
        record = await self.runs.find(thread_id, run_id)
        return RunOutcome(
            run_id,
            record.thread_id,
            lambda: self.runs.outcome(thread_id, run_id, cancel_on_disconnect=cancel_on_disconnect),
        )

    async def get_run(self, thread_id: str, run_id: str) -> Json:
        return run_json(await self.runs.get(thread_id, run_id))

    async def list_runs(self, thread_id: str, *, status: str | None, limit: int, offset: int) -> list[Json]:
        records = await self.runs.list(thread_id, status=status, limit=limit, offset=offset)  # type: ignore[arg-type]
        return [run_json(r) for r in records]

    async def cancel_run(self, thread_id: str, run_id: str, *, action: str, wait: bool) -> RunOutcome | None:
        await self.runs.cancel(thread_id, run_id, action=action)  # type: ignore[arg-type]
        if not wait:
            return None
        return await self.join_run(thread_id, run_id, cancel_on_disconnect=False)

    async def cancel_runs(
        self, *, thread_id: str | None, run_ids: list[str] | None, status: str | None, action: str
    ) -> None:
        await self.runs.cancel_many(
            thread_id=thread_id,
            run_ids=run_ids,
            statuses=_CANCELLABLE[status] if status is not None else (),
            action=action,  # type: ignore[arg-type]
        )

    async def create_runs(self, reqs: list[RunCreate]) -> list[Json]:
        return [run_json(r) for r in await self.runs.create_batch(reqs)]

    async def delete_run(self, thread_id: str, run_id: str) -> None:
        await self.runs.delete(thread_id, run_id)

    # Crons

    async def create_cron(self, body: Json, *, thread_id: str | None) -> Json:
        return (await self.gw.crons.create(body, thread_id=thread_id)).to_json()

    async def get_cron(self, cron_id: str) -> Json:
        return (await self.gw.crons.get(cron_id)).to_json()

    async def update_cron(self, cron_id: str, body: Json) -> Json:
        return (await self.gw.crons.update(cron_id, body)).to_json()

    async def delete_cron(self, cron_id: str) -> None:
        await self.gw.crons.delete(cron_id)

    async def search_crons(
        self,
        *,
        assistant_id: str | None,
        thread_id: str | None,
        enabled: bool | None,
        metadata: Json | None,
        limit: int,
        offset: int,
        sort_by: str | None,
        sort_order: str | None,
    ) -> list[Json]:
        found = await self.gw.crons.search(
            assistant_id=assistant_id,
            thread_id=thread_id,
            enabled=enabled,
            metadata=metadata,
            limit=limit,
            offset=offset,
            sort_by=sort_by,
            sort_order=sort_order,
        )
        return [c.to_json() for c in found]

    async def count_crons(self, *, assistant_id: str | None, thread_id: str | None, metadata: Json | None) -> int:
        return await self.gw.crons.count(assistant_id=assistant_id, thread_id=thread_id, metadata=metadata)

    # Threads

    async def create_thread(
        self, thread_id: str | None, metadata: Json, if_exists: str, *, request_id: str | None = None
    ) -> Json:
        record = await self.gw.threads.create(
            thread_id=thread_id, metadata=metadata, if_exists=if_exists, request_id=request_id
        )
        return record.to_json()

    async def get_thread(self, thread_id: str) -> Json:
        return (await self.gw.threads.get(thread_id)).to_json()

    async def patch_thread(self, thread_id: str, metadata: Json) -> Json:
        return (await self.gw.threads.patch(thread_id, metadata=metadata)).to_json()

    async def delete_thread(self, thread_id: str) -> None:
        await self.gw.threads.delete(thread_id)

    async def copy_thread(self, thread_id: str) -> Json:
        return (await self.gw.threads.copy(thread_id)).to_json()

    async def prune_threads(self, thread_ids: list[str], *, strategy: str) -> int:
        return await self.gw.threads.prune(thread_ids, strategy=strategy)

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
        config, state = await self.gw.threads.update_state(thread_id, values, as_node=as_node, checkpoint=checkpoint)
        await self.gw.thread_streams.state_updated(thread_id, state)
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

    # The thread protocol

    async def protocol_command(self, thread_id: str, command: Command) -> Json:
        return await ThreadProtocol.of(self.gw).execute(thread_id, command)

    async def protocol_session(self, thread_id: str) -> Session:
        return await ThreadProtocol.of(self.gw).session(thread_id, dedupe=True)

    # Assistants

    async def get_assistant(self, assistant_id: str) -> Json:
        return (await self.gw.assistants.get(assistant_id)).to_json()

    async def create_assistant(self, **fields: Any) -> Json:
        return (await self.gw.assistants.create(**fields)).to_json()

    async def update_assistant(self, assistant_id: str, **fields: Any) -> Json:
        return (await self.gw.assistants.update(assistant_id, **fields)).to_json()

    async def delete_assistant(self, assistant_id: str, *, delete_threads: bool) -> None:
        await self.gw.assistants.delete(assistant_id, delete_threads=delete_threads)

    async def assistant_versions(
        self, assistant_id: str, *, metadata: Json | None, limit: int, offset: int
    ) -> list[Json]:
        found = await self.gw.assistants.versions(assistant_id, metadata=metadata, limit=limit, offset=offset)
        return [v.version_json() for v in found]

    async def set_latest_assistant_version(self, assistant_id: str, version: int) -> Json:
        return (await self.gw.assistants.set_latest(assistant_id, version)).to_json()

    async def search_assistants(
        self,
        *,
        graph_id: str | None,
        name: str | None,
        metadata: Json | None,
        limit: int,
        offset: int,
        sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> list[Json]:
        found = await self.gw.assistants.search(
            graph_id=graph_id,
            name=name,
            metadata=metadata,
            limit=limit,
            offset=offset,
            sort_by=sort_by,
            sort_order=sort_order,
        )
        return [a.to_json() for a in found]

    async def count_assistants(self, *, graph_id: str | None, name: str | None, metadata: Json | None) -> int:
        return await self.gw.assistants.count(graph_id=graph_id, name=name, metadata=metadata)

    async def assistant_graph(self, assistant_id: str, *, xray: bool | int) -> Json:
        return await self.gw.assistants.graph_json(assistant_id, xray=xray)

    async def assistant_schemas(self, assistant_id: str) -> Json:
        return await self.gw.assistants.schemas(assistant_id)

    async def assistant_subgraphs(self, assistant_id: str, *, namespace: str | None, recurse: bool) -> Json:
        return await self.gw.assistants.subgraphs(assistant_id, namespace=namespace, recurse=recurse)


def create_app(
    gateway: Gateway, *, api_key: str | None = None, max_body_bytes: int | None = None, web: WebApi | None = None
) -> Starlette:
    """The API over the run core, with the custom auth and the `http` section of the gateway's
    langgraph.json; `web`, the gRPC API over Connect and gRPC-Web."""
    about = info(__version__, langgraph.version.__version__)
    config = gateway.config
    limit = max_body_bytes or MAX_BODY_BYTES
    auth = [Middleware(AuthMiddleware, handlers=config.auth, max_body_bytes=limit)] if config.auth else []
    return build_app(
        LocalBackend(gateway),
        info=about,
        api_key=api_key,
        max_body_bytes=limit,
        http=config.http,
        auth=auth,
        custom_app=config.http_app,
        health=Health(gateway.dependency_checks(), draining=lambda: gateway.draining),
        refresh_metrics=gateway.refresh_metrics,
        web=web,
    )
