"""A run this process holds, from its admission to its end: what the scheduler queues, the
executor runs and the service finds by id."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.config.graphs import GraphSpec
from gateway.core.bus import RunWriter
from gateway.shared.outcome import Outcome
from gateway.shared.records import CancelAction, RunCreate, RunRecord


@dataclass(eq=False)
class LiveRun:
    record: RunRecord
    request: RunCreate
    spec: GraphSpec
    writer: RunWriter
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    # Set by the executor's first step: a task cancelled before it starts never runs its
    # cleanup, so until then a cancel is a flag the executor reads when it starts.
    started: bool = False
    # "interrupt" or "rollback" once cancelled; "release" when it stops here to go on in
    # another process (this one drains, or lost its lease).
    cancel_action: CancelAction | Literal["release"] | None = None
    # Set once the executor starts recording its end: from then on its lease may be gone (the
    # end recorded) while it writes its last events, and nothing may stop it.
    ending: bool = False
    outcome: Outcome = field(default_factory=Outcome)
    attempt: int = 1
    # The process holding the run's claim (None: a queued run this process ends unclaimed).
    owner: str | None = None
    # The edge that created it ("unknown": another process did), and the trace context it was
    # created in (None: tracing is off), which its span continues.
    edge: str = "unknown"
    trace: Any = None

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def thread_id(self) -> str:
        return self.record.thread_id

    @property
    def temporary(self) -> bool:
        return self.request.temporary


@dataclass(frozen=True)
class Finished:
    """What a finished run leaves in memory: enough for a late join or `/join`, not its events."""

    record: RunRecord
    result: bytes | None
