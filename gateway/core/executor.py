"""Executes a run: builds the graph's config, streams the graph, publishes its events on the
bus, and records how the run ended, with its thread's new state, in one write."""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from typing import Any

import langgraph.version
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel

from gateway.auth import put_caller
from gateway.core.bus import RunWriter
from gateway.core.graphs import Graphs
from gateway.core.live import LiveRun
from gateway.core.metrics import RUNS_FINISHED
from gateway.core.run_checkpoints import LastCheckpoint, RunCheckpoints
from gateway.core.state import thread_change_from_state
from gateway.core.stream import stream_graph, to_command
from gateway.shared.errors import Unavailable
from gateway.shared.graph_errors import error_payload
from gateway.shared.records import RunRecord, RunStatus, ThreadChange, lost_run_error
from gateway.shared.serde import dumps
from gateway.storage import Storage

logger = logging.getLogger("gateway.runs")

# Seconds between attempts to record a run's end while storage is unreachable (about 5 min).
_RECORD_RETRIES = (0.5, 1, 2, 4, 8, *([15] * 19))
_CANCELLED = dumps({"error": "UserInterrupt", "message": "the run was cancelled"})
_TIMED_OUT = dumps({"error": "TimeoutError", "message": ""})


class Executor:
    def __init__(self, storage: Storage, graphs: Graphs, *, run_timeout: float | None) -> None:
        self._storage = storage
        self._graphs = graphs
        self._run_timeout = run_timeout

    @property
    def checkpointer(self) -> BaseCheckpointSaver[Any]:
        return self._storage.checkpointer

    def _config(self, live: LiveRun) -> dict[str, Any]:
        # The request holds its assistant's config and context (RunService merged them in).
        req = live.request
        configurable = {
            **(req.config.get("configurable") or {}),
            **req.context,
            "run_id": live.run_id,
            "thread_id": live.thread_id,
            "graph_id": live.spec.graph_id,
            "assistant_id": live.record.assistant_id,
        }
        if req.checkpoint_id:
            configurable["checkpoint_id"] = req.checkpoint_id
        if req.checkpoint:
            # A checkpoint of this run's thread: its thread_id cannot point elsewhere.
            configurable.update({k: v for k, v in req.checkpoint.items() if k != "thread_id"})
        put_caller(configurable, req.auth_user, req.auth_permissions)
        metadata = {
            **(req.config.get("metadata") or {}),
            **live.record.metadata,
            "run_attempt": live.attempt,
            "langgraph_version": langgraph.version.__version__,
        }
        # No recursion_limit unless the request or the assistant sets one: LangGraph's own
        # default (LANGGRAPH_DEFAULT_RECURSION_LIMIT) applies, as on the Agent Server.
        return {**req.config, "configurable": configurable, "metadata": metadata}

    async def _input(self, live: LiveRun) -> Any:
        req = live.request
        if live.attempt > 1 and not live.temporary:
            # A run taken over from a process that died goes on from its last checkpoint.
            config: RunnableConfig = {"configurable": {"thread_id": live.thread_id}}
            async for _ in self.checkpointer.alist(config, filter={"run_id": live.run_id}, limit=1):
                return None
        return to_command(req.command) if req.command else req.input

    async def execute(self, live: LiveRun) -> None:
        live.started = True
        if live.cancel_action is not None:
            await self.finish(live, "interrupted")
            return
        req = live.request
        writer = live.writer
        outcome = live.outcome
        status: RunStatus = "error"
        # The graph the run ran, for reading the thread's state once it ended.
        ran: Pregel | None = None
        try:
            config = self._config(live)
            graph_input = await self._input(live)
            writer.publish("metadata", (), dumps({"run_id": live.run_id, "attempt": live.attempt}))
            checkpointer = None if live.temporary else RunCheckpoints(self.checkpointer, live.thread_id)
            # A factory's graph is built within the run's time, and its context exited when
            # the run's stream ends, before the run's end is recorded and published.
            async with (
                asyncio.timeout(self._run_timeout),
                self._graphs.build(
                    live.spec, config, "threads.create_run", checkpointer=checkpointer, context=req.context
                ) as graph,
            ):
                ran = graph
                parts = stream_graph(
                    graph,
                    graph_input,
                    config,
                    stream_mode=req.stream_mode,
                    subgraphs=req.stream_subgraphs,
                    run_id=live.run_id,
                    context=req.context,
                    interrupt_before=req.interrupt_before,
                    interrupt_after=req.interrupt_after,
                    durability=None if live.temporary else req.durability,
                )
                async with aclosing(parts):
                    async for name, ns, data in parts:
                        writer.publish(name, ns, data)
                        outcome.add(name, ns, data)
                        if writer.pressing:
                            await writer.drain()
            status = "success"
        except asyncio.CancelledError:
            status = "interrupted"
        except TimeoutError:
            status = "timeout"
        except Exception as exc:
            status = "error"
            error = dumps(error_payload(exc))
            writer.publish("error", (), error)
            outcome.add("error", (), error)
            logger.info("run %s failed: %s: %s", live.run_id, type(exc).__name__, exc, exc_info=exc)
        finally:
            await asyncio.shield(self.finish(live, status, graph=ran))

    async def finish(
        self, live: LiveRun, status: RunStatus, *, queued: bool = False, graph: Pregel | None = None
    ) -> bool:
        """Records the end of the run (executed, or cancelled while `queued`), then publishes
        `end`: a client that reads `end` and asks for the run sees how it ended. False when
        the run was not this process's to end (another process holds it now)."""
        ended = True
        live.ending = True
        if live.cancel_action == "release":
            # It goes on in another process, which writes its end.
            await self._close(live)
            return False
        if live.cancel_action is not None:
            status = "interrupted"
        for wait in _RECORD_RETRIES:
            try:
                ended = await self._record_end(live, status, queued, graph)
                live.record.status = status
                break
            except Unavailable as exc:
                # Storage is down: the run's end is recorded when it is back (its lease lets
                # another process take the run over should this one die meanwhile).
                logger.warning("recording the end of run %s waits for storage: %s", live.run_id, exc.message)
                await asyncio.sleep(wait)
            except Exception:
                logger.exception("could not record the end of run %s", live.run_id)
                break
        if not ended:
            await self._close(live)
            return False
        RUNS_FINISHED.labels(live.spec.graph_id, status, live.edge).inc()
        live.writer.publish("end", (), b'{"status":"' + status.encode() + b'"}')
        await self._close(live)
        return True

    async def _record_end(self, live: LiveRun, status: RunStatus, queued: bool, graph: Pregel | None) -> bool:
        conditions: dict[str, Any] = (
            {"expect": ("pending",)} if queued else {"owner": live.owner, "attempt": live.attempt}
        )
        if live.cancel_action == "rollback":
            await live.writer.discard()
            if not live.temporary:
                await self._storage.delete_run_checkpoints(live.thread_id, live.run_id)
                if graph is not None and isinstance(graph.checkpointer, RunCheckpoints):
                    graph.checkpointer.forget()
            change = await self._thread_change(live, "success", graph)
            return await self._storage.finish_run(
                live.run_id, live.thread_id, None, change, delete_thread=live.temporary, **conditions
            )
        change = ThreadChange() if live.temporary else await self._thread_change(live, status, graph)
        return await self._storage.finish_run(
            live.run_id, live.thread_id, status, change, delete_thread=live.temporary, **conditions
        )

    @staticmethod
    async def _close(live: LiveRun) -> None:
        try:
            await live.writer.close()
        except Exception:
            logger.exception("could not write the event log of run %s", live.run_id)

    async def fail_lost(self, record: RunRecord, writer: RunWriter) -> None:
        """A run whose processes died with it too often: its stream says so and ends."""
        error = lost_run_error(record.attempt)
        writer.publish("error", (), error)
        writer.publish("end", (), b'{"status":"error"}')
        await writer.close()
        change = ThreadChange(status="error", error=error)
        await self._storage.finish_run(record.run_id, record.thread_id, "error", change, expect=("error",))
        RUNS_FINISHED.labels(str(record.metadata.get("graph_id", "unknown")), "error", "unknown").inc()

    async def _state(self, live: LiveRun, graph: Pregel | None) -> Any:
        config: RunnableConfig = {"configurable": {"thread_id": live.thread_id}}
        if graph is not None:
            # The checkpoint the run wrote last, as it kept it: no read of what it just stored.
            run = graph.checkpointer
            last = run.last() if isinstance(run, RunCheckpoints) else None
            saver = self.checkpointer if last is None else LastCheckpoint(self.checkpointer, last)
            return await graph.copy(update={"checkpointer": saver}).aget_state(config)
        # A run that did not get as far as building its graph (cancelled while queued).
        async with self._graphs.build(
            live.spec, self._config(live), "threads.read", checkpointer=self.checkpointer
        ) as read:
            return await read.aget_state(config)

    async def _thread_change(self, live: LiveRun, status: RunStatus, graph: Pregel | None) -> ThreadChange:
        change = ThreadChange()
        try:
            state = await self._state(live, graph)
        except Exception as exc:
            # LangGraph reads the state by preparing the next tasks, which fails when the
            # input does not fit the graph's state schema; the thread must not stay busy.
            logger.info(
                "could not read thread %s after run %s: %s: %s", live.thread_id, live.run_id, type(exc).__name__, exc
            )
        else:
            change = thread_change_from_state(state)
        if status == "error":
            change.status, change.error = "error", live.outcome.error or b"null"
        elif status == "timeout":
            change.status, change.error = "error", _TIMED_OUT
        elif status == "interrupted":
            change.status, change.error = change.status or "interrupted", _CANCELLED
        else:
            change.status, change.error = change.status or "idle", b"null"
        return change
