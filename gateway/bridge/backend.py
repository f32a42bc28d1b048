"""The HTTP/SSE routes' backend (gateway.http._backend) served by a separate process that speaks
gRPC to a gateway (`python -m gateway bridge --target host:port`).

The routes and the SSE framing are the same as in-process; this backend turns each call into
RPCs. Most methods are one RPC each, declared in a line (gateway.bridge.forward); the others
(streams, waits, the thread protocol) are written out below. Streams use the batched RPCs
(gateway.bridge.streams). The thread protocol (commands, event streams, WebSockets) goes
through SessionsService (gateway.bridge.session).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from grpc_health.v1.health_pb2_grpc import HealthStub
from langgraph.gateway.v1 import (
    assistants_pb2,
    assistants_pb2_grpc,
    crons_pb2,
    crons_pb2_grpc,
    runs_pb2,
    runs_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
    threads_pb2,
    threads_pb2_grpc,
)

from gateway.bridge.credentials import forwarded
from gateway.bridge.errors import UpstreamError, raise_for_status, raise_status
from gateway.bridge.forward import Forwarding, Metadata, Service, each, forward, number
from gateway.bridge.session import RemoteSession
from gateway.bridge.store import RemoteStore
from gateway.bridge.streams import result_of, run_frames, thread_frames
from gateway.http._backend import Json, RunOutcome, RunStream
from gateway.process import tracing
from gateway.shared.errors import NotFound, Unavailable
from gateway.shared.protocol import Command, failure, session_only
from gateway.shared.records import RunCreate
from gateway.shared.tls import TargetTls
from gateway.wire import convert
from gateway.wire.agent_json import (
    STREAM_MODES,
    assistant_json,
    cancel_action,
    create_cron_request,
    cron_json,
    graph_json,
    run_batch_request,
    run_json,
    run_request,
    schemas_json,
    state_json,
    state_update_json,
    subgraphs_json,
    thread_json,
    thread_status,
    update_cron_request,
    version_json,
)
from gateway.wire.convert import MAX_MESSAGE_BYTES, SUBSCRIBED

logger = logging.getLogger("gateway.bridge")

ASSISTANTS = Service(assistants_pb2, assistants_pb2_grpc.AssistantsServiceStub)
THREADS = Service(threads_pb2, threads_pb2_grpc.ThreadsServiceStub)
RUNS = Service(runs_pb2, runs_pb2_grpc.RunsServiceStub)
CRONS = Service(crons_pb2, crons_pb2_grpc.CronsServiceStub)
SESSIONS = Service(sessions_pb2, sessions_pb2_grpc.SessionsServiceStub)
# Stateless runs this bridge started, so that their Location (/runs/{run_id}/stream) can be
# joined: the gRPC API needs the temporary thread's id.
_REMEMBERED_RUNS = 1024


def _thread_filters(fields: dict[str, Any]) -> dict[str, Any]:
    return {**fields, "status": thread_status(fields.get("status"))}


def _graph_request(fields: dict[str, Any]) -> dict[str, Any]:
    xray = fields["xray"]
    # An int is a depth; deeper than any graph nests is every level.
    depth = None if isinstance(xray, bool) else min(xray, 2**31 - 1)
    return {"assistant_id": fields["assistant_id"], "xray": bool(xray), "xray_depth": depth}


class RemoteBackend(Forwarding):
    def __init__(self, target: str, *, api_key: str | None = None, tls: TargetTls | None = None) -> None:
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        # With tracing on, each call carries the trace of the request it serves to the gateway.
        interceptors = tracing.grpc_client_interceptors()
        if tls is None:
            self._channel = grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
        else:
            credentials = grpc.ssl_channel_credentials(tls.root_certificates, tls.private_key, tls.certificate_chain)
            self._channel = grpc.aio.secure_channel(target, credentials, options=options, interceptors=interceptors)
        self.stubs = {s: s.stub(self._channel) for s in (ASSISTANTS, THREADS, RUNS, CRONS, SESSIONS)}
        self._runs: runs_pb2_grpc.RunsServiceStub = self.stubs[RUNS]
        self._threads: threads_pb2_grpc.ThreadsServiceStub = self.stubs[THREADS]
        self.store = RemoteStore(self._channel, self)
        self._key: Metadata = (("x-api-key", api_key),) if api_key else ()
        self._stateless: OrderedDict[str, str] = OrderedDict()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def metadata(self) -> Metadata:
        """The bridge's key, and the credentials of the request being served (gateway.bridge.credentials)."""
        caller = forwarded()
        if self._key:
            caller = tuple(item for item in caller if item[0] != "x-api-key")
        return (*self._key, *caller)

    async def ping(self) -> None:
        """Raises unless the gateway answers that it serves (the bridge's readiness)."""
        try:
            response = await HealthStub(self._channel).Check(HealthCheckRequest(), metadata=self._key, timeout=3)
        except grpc.aio.AioRpcError as exc:
            # One line in the health check's log, as the HTTP answers say it.
            raise_for_status(exc)
        if response.status != HealthCheckResponse.SERVING:
            raise Unavailable(f"the gateway is {HealthCheckResponse.ServingStatus.Name(response.status)}")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._channel.close()

    # One RPC each: the arguments go into the request's fields of the same names.

    create_run = forward(RUNS, "CreateRun", run_json, request=run_request)
    create_runs = forward(RUNS, "CreateRunBatch", each("runs", run_json), request=run_batch_request)
    get_run = forward(RUNS, "GetRun", run_json)
    delete_run = forward(RUNS, "DeleteRun")
    list_runs = forward(
        RUNS,
        "ListRuns",
        each("runs", run_json),
        fields=lambda f: {**f, "status": convert.RUN_STATUSES.get(f["status"] or "", runs_pb2.RUN_STATUS_UNSPECIFIED)},
    )
    cancel_runs = forward(
        RUNS,
        "CancelRuns",
        fields=lambda f: {
            **f,
            "status": convert.CANCEL_STATUSES[f["status"]] if f["status"] is not None else None,
            "action": cancel_action(f["action"]),
        },
    )

    create_cron = forward(CRONS, "CreateCron", cron_json, request=create_cron_request)
    update_cron = forward(CRONS, "UpdateCron", cron_json, request=update_cron_request)
    get_cron = forward(CRONS, "GetCron", cron_json)
    delete_cron = forward(CRONS, "DeleteCron")
    search_crons = forward(CRONS, "SearchCrons", each("crons", cron_json))
    count_crons = forward(CRONS, "CountCrons", number("count"))

    create_thread = forward(THREADS, "CreateThread", thread_json)
    get_thread = forward(THREADS, "GetThread", thread_json)
    patch_thread = forward(THREADS, "UpdateThread", thread_json)
    copy_thread = forward(THREADS, "CopyThread", thread_json)
    prune_threads = forward(THREADS, "PruneThreads", number("pruned_count"))
    delete_thread = forward(THREADS, "DeleteThread")
    search_threads = forward(THREADS, "SearchThreads", each("threads", thread_json), fields=_thread_filters)
    count_threads = forward(THREADS, "CountThreads", number("count"), fields=_thread_filters)
    thread_state = forward(
        THREADS,
        "GetThreadState",
        state_json,
        fields=lambda f: {
            "thread_id": f["thread_id"],
            "checkpoint_id": (f["checkpoint"] or {}).get("checkpoint_id"),
            "subgraphs": f["subgraphs"],
        },
    )
    update_thread_state = forward(THREADS, "UpdateThreadState", state_update_json)
    thread_history = forward(THREADS, "GetThreadHistory", each("states", state_json))

    get_assistant = forward(ASSISTANTS, "GetAssistant", assistant_json)
    create_assistant = forward(ASSISTANTS, "CreateAssistant", assistant_json)
    update_assistant = forward(ASSISTANTS, "UpdateAssistant", assistant_json)
    delete_assistant = forward(ASSISTANTS, "DeleteAssistant")
    search_assistants = forward(ASSISTANTS, "SearchAssistants", each("assistants", assistant_json))
    count_assistants = forward(ASSISTANTS, "CountAssistants", number("count"))
    assistant_versions = forward(ASSISTANTS, "ListAssistantVersions", each("versions", version_json))
    set_latest_assistant_version = forward(ASSISTANTS, "SetLatestAssistantVersion", assistant_json)
    assistant_graph = forward(ASSISTANTS, "GetAssistantGraph", graph_json, fields=_graph_request)
    assistant_schemas = forward(ASSISTANTS, "GetAssistantSchemas", schemas_json)
    assistant_subgraphs = forward(ASSISTANTS, "GetAssistantSubgraphs", subgraphs_json)

    # Runs: streams, waits and cancels

    def _remember(self, run_id: str, thread_id: str) -> None:
        self._stateless[run_id] = thread_id
        while len(self._stateless) > _REMEMBERED_RUNS:
            self._stateless.popitem(last=False)

    def _cancel_later(self, thread_id: str, run_id: str) -> Callable[[], None]:
        def cancel() -> None:
            request = runs_pb2.CancelRunRequest(thread_id=thread_id, run_id=run_id)
            task = asyncio.create_task(self._cancel_quietly(request))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return cancel

    async def _cancel_quietly(self, request: runs_pb2.CancelRunRequest) -> None:
        try:
            await self._runs.CancelRun(request, metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                logger.warning("cancelling run %s failed: %s", request.run_id, exc.details())

    async def _start_stateless(self, req: RunCreate) -> tuple[Any, runs_pb2.RunEventBatch, runs_pb2.MetadataEvent]:
        # A stateless run starts at once on its own thread, so its first event (metadata, with
        # the run's ids) comes at once too, or the call fails with the request's error.
        call = self._runs.RunStreamBatch(run_request(req), metadata=self.metadata)
        try:
            first = await call.read()
        except grpc.aio.AioRpcError as exc:
            raise_for_status(exc)
        if first is grpc.aio.EOF or not first.events or first.events[0].WhichOneof("event") != "metadata":
            call.cancel()
            raise UpstreamError("the gateway's stream did not start with the run's metadata")
        meta = first.events[0].metadata
        self._remember(meta.run_id, meta.thread_id)
        return call, first, meta

    async def stream_run(self, req: RunCreate) -> RunStream:
        if req.thread_id is None:
            call, first, meta = await self._start_stateless(req)
            # The gateway cancels the run itself when this call is cancelled (on_disconnect).
            return RunStream(meta.run_id, meta.thread_id, run_frames(call, first))
        # A run may wait behind another on its thread: create it (errors come back now), then
        # join its stream from the first event.
        run = await self.call(self._runs.CreateRun, run_request(req))
        join = runs_pb2.JoinRunStreamRequest(
            thread_id=run.thread_id,
            run_id=run.run_id,
            last_event_id="0",
            cancel_on_disconnect=req.on_disconnect == "cancel",
        )
        call = self._runs.JoinRunStreamBatch(join, metadata=self.metadata)
        return RunStream(run.run_id, run.thread_id, run_frames(call))

    async def join_stream(
        self,
        thread_id: str | None,
        run_id: str,
        *,
        last_event_id: str | None,
        modes: list[str] | None,
        cancel_on_disconnect: bool,
    ) -> RunStream:
        if thread_id is None:
            thread_id = self._stateless.get(run_id)
            if thread_id is None:
                raise NotFound(f"Run {run_id} not found.", resource="run", id=run_id)
        # Fail before the headers go out when the run does not exist.
        await self.call(self._runs.GetRun, runs_pb2.GetRunRequest(thread_id=thread_id, run_id=run_id))
        request = runs_pb2.JoinRunStreamRequest(
            thread_id=thread_id,
            run_id=run_id,
            last_event_id=last_event_id or "",
            stream_mode=[STREAM_MODES[m] for m in modes or ()],
            cancel_on_disconnect=cancel_on_disconnect,
        )
        return RunStream(run_id, thread_id, run_frames(self._runs.JoinRunStreamBatch(request, metadata=self.metadata)))

    async def wait_run(self, req: RunCreate) -> RunOutcome:
        if req.thread_id is None:
            call, first, meta = await self._start_stateless(req)
            return RunOutcome(meta.run_id, meta.thread_id, lambda: result_of(call, first))
        run = await self.call(self._runs.CreateRun, run_request(req))
        cancel = self._cancel_later(run.thread_id, run.run_id) if req.on_disconnect == "cancel" else None
        return RunOutcome(run.run_id, run.thread_id, self._joiner(run.thread_id, run.run_id), cancel)

    def _joiner(self, thread_id: str, run_id: str) -> Callable[[], Awaitable[bytes]]:
        async def result() -> bytes:
            request = runs_pb2.JoinRunRequest(thread_id=thread_id, run_id=run_id)
            outcome: runs_pb2.RunResult = await self.call(self._runs.JoinRun, request)
            return outcome.result_json.encode()

        return result

    async def join_run(self, thread_id: str, run_id: str, *, cancel_on_disconnect: bool) -> RunOutcome:
        await self.call(self._runs.GetRun, runs_pb2.GetRunRequest(thread_id=thread_id, run_id=run_id))
        cancel = self._cancel_later(thread_id, run_id) if cancel_on_disconnect else None
        return RunOutcome(run_id, thread_id, self._joiner(thread_id, run_id), cancel)

    async def cancel_run(self, thread_id: str, run_id: str, *, action: str, wait: bool) -> RunOutcome | None:
        request = runs_pb2.CancelRunRequest(thread_id=thread_id, run_id=run_id, action=cancel_action(action))
        await self.call(self._runs.CancelRun, request)
        return RunOutcome(run_id, thread_id, self._joiner(thread_id, run_id)) if wait else None

    # Threads: the thread stream

    async def thread_stream(
        self, thread_id: str, *, last_event_id: str | None, modes: list[str]
    ) -> AsyncIterator[bytes]:
        request = threads_pb2.JoinThreadStreamRequest(
            thread_id=thread_id, last_event_id=last_event_id or "", stream_modes=modes
        )
        call = self._threads.JoinThreadStream(request, metadata=self.metadata)
        # Its errors (an unknown thread, a malformed id) before the headers go out: the gateway
        # sends its initial metadata once it accepted the subscription, which may stay quiet.
        try:
            accepted = dict(await call.initial_metadata()).get(SUBSCRIBED) is not None
            if not accepted:
                raise_status(await call.code(), await call.details(), await call.trailing_metadata())
        except grpc.aio.AioRpcError as exc:
            raise_for_status(exc)
        return thread_frames(call)

    # The thread protocol, from the gateway's SessionsService

    async def protocol_command(self, thread_id: str, command: Command) -> Json:
        if (refused := session_only(thread_id, command.body)) is not None:
            return failure(command.id, refused.code, refused.message)
        try:
            session = await self.protocol_session(thread_id)
        except NotFound as exc:
            # A thread the caller may not see, refused as the gateway's own edge refuses it.
            return failure(command.id, "not_found", exc.message)
        try:
            return await session.execute(command)
        finally:
            await session.close()

    async def protocol_session(self, thread_id: str) -> RemoteSession:
        session = RemoteSession(self.stubs[SESSIONS], thread_id, self.metadata)
        await session.open()
        return session
