"""The HTTP routes' backend when the run core lives in the same process: each method calls the
core's id-addressed services and turns what they return into JSON or SSE bytes. Most methods
are one core call each, declared in a line (gateway.http._calls); the others (streams, waits,
cancels, the thread protocol) are written out below."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import langgraph.version
from starlette.applications import Starlette
from starlette.middleware import Middleware

from gateway import __version__
from gateway.core.assistants import Assistants
from gateway.core.crons import Crons
from gateway.core.gateway import Gateway
from gateway.core.protocol_stream import Session, ThreadProtocol
from gateway.core.service import RunService
from gateway.core.thread_stream import parse_thread_event_id, stream_modes
from gateway.core.threads import Threads
from gateway.http._backend import Json, RunOutcome, RunStream
from gateway.http._calls import Calling, each, local, to_json
from gateway.http._custom_auth import AuthMiddleware
from gateway.http._objects import info, run_json
from gateway.http._sse import frame
from gateway.http._utils import iterating
from gateway.http.app import WebApi, build_app
from gateway.process.health import Health
from gateway.shared.protocol import Command
from gateway.shared.records import AssistantRecord, Event, RunCreate, RunStatus
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


class LocalBackend(Calling):
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.runs = gateway.runs
        self.store = gateway.store
        self.services = (gateway.runs, gateway.threads, gateway.crons, gateway.assistants)

    # One core call each: the arguments go to the parameters of the same names.

    create_run = local(RunService.create, run_json)
    create_runs = local(RunService.create_batch, each(run_json))
    get_run = local(RunService.get, run_json)
    list_runs = local(RunService.list, each(run_json))
    delete_run = local(RunService.delete)

    create_cron = local(Crons.create, to_json)
    get_cron = local(Crons.get, to_json)
    update_cron = local(Crons.update, to_json)
    delete_cron = local(Crons.delete)
    search_crons = local(Crons.search, each(to_json))
    count_crons = local(Crons.count)

    create_thread = local(Threads.create, to_json)
    get_thread = local(Threads.get, to_json)
    patch_thread = local(Threads.patch, to_json)
    copy_thread = local(Threads.copy, to_json)
    prune_threads = local(Threads.prune)
    delete_thread = local(Threads.delete)
    search_threads = local(Threads.search, each(to_json))
    count_threads = local(Threads.count)
    thread_history = local(Threads.history)

    get_assistant = local(Assistants.get, to_json)
    create_assistant = local(Assistants.create, to_json)
    update_assistant = local(Assistants.update, to_json)
    delete_assistant = local(Assistants.delete)
    search_assistants = local(Assistants.search, each(to_json))
    count_assistants = local(Assistants.count)
    assistant_versions = local(Assistants.versions, each(AssistantRecord.version_json))
    set_latest_assistant_version = local(Assistants.set_latest, to_json)
    assistant_graph = local(Assistants.graph_json)
    assistant_schemas = local(Assistants.schemas)
    assistant_subgraphs = local(Assistants.subgraphs)

    # Runs: streams, waits and cancels

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

    # Threads: state, which names its checkpoint by its id, and the thread stream

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

    async def thread_stream(
        self, thread_id: str, *, last_event_id: str | None, modes: list[str]
    ) -> AsyncIterator[bytes]:
        wanted = stream_modes(modes)
        after = parse_thread_event_id(last_event_id)
        await self.gw.threads.get(thread_id)
        streams = self.gw.thread_streams

        # Subscribed now, before the response's headers go out.
        subscription = streams.subscribe(thread_id, after=after, modes=wanted)

        async def body() -> AsyncIterator[bytes]:
            async with iterating(subscription) as batches:
                async for batch in batches:
                    yield b"".join(frame(event_name(e.name, e.ns), e.data, e.event_id) for e in batch)

        return body()

    # The thread protocol

    async def protocol_command(self, thread_id: str, command: Command) -> Json:
        return await ThreadProtocol.of(self.gw).execute(thread_id, command)

    async def protocol_session(self, thread_id: str) -> Session:
        return await ThreadProtocol.of(self.gw).session(thread_id, dedupe=True)


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
