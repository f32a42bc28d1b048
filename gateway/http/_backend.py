"""What the HTTP routes need from the gateway behind them. Two implement it: the run core in
the same process (gateway.http._local), and a gateway reached over gRPC (gateway.bridge.backend).

Objects come back as JSON-ready values whose graph data are orjson Fragments, so payloads pass
through without being decoded. Streams come back as SSE bytes framed by gateway.http._sse.
Every method raises the core's errors (gateway.shared.errors) before any byte is streamed.

This interface is also the description both backends declare their one-call methods from
(gateway.http._calls, gateway.bridge.forward): such a method has its parameters named as the core
method's parameters and as the fields of the RPC's request they fill.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.shared.protocol import Command, Filter, Frame, SessionFailed
from gateway.shared.records import RunCreate

Json = dict[str, Any]


@dataclass
class RunStream:
    run_id: str
    thread_id: str
    body: AsyncIterator[bytes]
    # Called when the client leaves before the run ends (on_disconnect=cancel); must not block.
    cancel: Callable[[], None] | None = None


@dataclass
class RunOutcome:
    run_id: str
    thread_id: str
    # The run's final values, its interrupt or {"__error__": ...}, once it has ended.
    result: Callable[[], Awaitable[bytes]]
    cancel: Callable[[], None] | None = None


class ProtocolSession(Protocol):
    """One connection's session of the thread protocol (gateway.shared.protocol): its subscriptions'
    events and the replies put in line with them, in order."""

    async def execute(self, command: Command) -> Json: ...

    async def subscribe(self, wanted: Filter, since: int | None = None) -> object: ...

    async def send_reply(self, reply: Json) -> None: ...

    def items(self) -> AsyncIterator[list[Frame] | Json | SessionFailed]: ...

    async def close(self) -> None: ...


class StoreBackend(Protocol):
    """The store (gateway.core.store): namespaces are lists of labels, items JSON objects."""

    async def put(
        self, namespace: Sequence[str], key: str, value: Json, *, index: bool | list[str] | None, ttl: float | None
    ) -> None: ...

    async def get(self, namespace: Sequence[str], key: str, *, refresh_ttl: bool | None) -> Json | None: ...

    async def delete(self, namespace: Sequence[str], key: str) -> None: ...

    async def search(
        self,
        namespace_prefix: Sequence[str],
        *,
        filter: Json | None,
        limit: int,
        offset: int,
        query: str | None,
        refresh_ttl: bool | None,
    ) -> list[Json]: ...

    async def list_namespaces(
        self,
        *,
        prefix: Sequence[str] | None,
        suffix: Sequence[str] | None,
        max_depth: int | None,
        limit: int,
        offset: int,
    ) -> list[list[str]]: ...


class Backend(Protocol):
    @property
    def store(self) -> StoreBackend: ...

    # Runs

    async def create_run(self, req: RunCreate) -> Json: ...

    async def stream_run(self, req: RunCreate) -> RunStream: ...

    async def join_stream(
        self,
        thread_id: str | None,
        run_id: str,
        *,
        last_event_id: str | None,
        modes: list[str] | None,
        cancel_on_disconnect: bool,
    ) -> RunStream: ...

    async def wait_run(self, req: RunCreate) -> RunOutcome: ...

    async def join_run(self, thread_id: str, run_id: str, *, cancel_on_disconnect: bool) -> RunOutcome: ...

    async def get_run(self, thread_id: str, run_id: str) -> Json: ...

    async def list_runs(self, thread_id: str, *, status: str | None, limit: int, offset: int) -> list[Json]: ...

    async def cancel_run(self, thread_id: str, run_id: str, *, action: str, wait: bool) -> RunOutcome | None: ...

    async def cancel_runs(
        self, *, thread_id: str | None, run_ids: list[str] | None, status: str | None, action: str
    ) -> None: ...

    async def create_runs(self, requests: list[RunCreate]) -> list[Json]:
        """Background runs, each on a thread of its own (`POST /runs/batch`)."""
        ...

    async def delete_run(self, thread_id: str, run_id: str) -> None: ...

    # Crons: `body` is the API's cron body (a run-create body with schedule, timezone, ...)

    async def create_cron(self, body: Json, *, thread_id: str | None) -> Json: ...

    async def get_cron(self, cron_id: str) -> Json: ...

    async def update_cron(self, cron_id: str, body: Json) -> Json: ...

    async def delete_cron(self, cron_id: str) -> None: ...

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
    ) -> list[Json]: ...

    async def count_crons(self, *, assistant_id: str | None, thread_id: str | None, metadata: Json | None) -> int: ...

    # Threads

    async def create_thread(
        self, thread_id: str | None, metadata: Json, if_exists: str, *, request_id: str | None = None
    ) -> Json: ...

    async def get_thread(self, thread_id: str) -> Json: ...

    async def patch_thread(self, thread_id: str, metadata: Json) -> Json: ...

    async def delete_thread(self, thread_id: str) -> None: ...

    async def copy_thread(self, thread_id: str) -> Json: ...

    async def prune_threads(self, thread_ids: list[str], *, strategy: str) -> int: ...

    async def search_threads(self, **filters: Any) -> list[Json]: ...

    async def count_threads(self, **filters: Any) -> int: ...

    async def thread_state(self, thread_id: str, *, checkpoint: Json | None, subgraphs: bool) -> Json: ...

    async def update_thread_state(
        self, thread_id: str, values: Any, *, as_node: str | None, checkpoint: Json | None
    ) -> Json: ...

    async def thread_history(
        self, thread_id: str, *, limit: int, before: str | None, metadata: Json | None, checkpoint: Json | None
    ) -> list[Json]: ...

    async def thread_stream(
        self, thread_id: str, *, last_event_id: str | None, modes: list[str]
    ) -> AsyncIterator[bytes]: ...

    # The thread protocol

    async def protocol_command(self, thread_id: str, command: Command) -> Json: ...

    async def protocol_session(self, thread_id: str) -> ProtocolSession: ...

    # Assistants

    async def get_assistant(self, assistant_id: str) -> Json: ...

    async def create_assistant(self, **fields: Any) -> Json:
        """`fields`: the body of `POST /assistants` (graph_id, assistant_id, config, context,
        metadata, if_exists, name, description)."""
        ...

    async def update_assistant(self, assistant_id: str, **fields: Any) -> Json:
        """`fields`: the body of `PATCH /assistants/{id}` (graph_id, config, context, metadata,
        name, description); None leaves a field as it is."""
        ...

    async def delete_assistant(self, assistant_id: str, *, delete_threads: bool) -> None: ...

    async def assistant_versions(
        self, assistant_id: str, *, metadata: Json | None, limit: int, offset: int
    ) -> list[Json]: ...

    async def set_latest_assistant_version(self, assistant_id: str, version: int) -> Json: ...

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
    ) -> list[Json]: ...

    async def count_assistants(self, *, graph_id: str | None, name: str | None, metadata: Json | None) -> int: ...

    async def assistant_graph(self, assistant_id: str, *, xray: bool | int) -> Json: ...

    async def assistant_schemas(self, assistant_id: str) -> Json: ...

    async def assistant_subgraphs(self, assistant_id: str, *, namespace: str | None, recurse: bool) -> Json: ...
