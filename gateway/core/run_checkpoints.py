"""A run's view of its thread's checkpointer. Every call goes through to the storage's saver;
the last checkpoint the run wrote at the graph's root, with the writes made against it since,
is kept, so that the thread's state when the run ends is read from memory: the run's end then
costs no read of the checkpoint it has just written (one round trip and a deserialisation on
Postgres, under load the wait for the pool's thread too).

What is kept is what the saver was given, once it has stored it (a task's error as the saver
reads it back, through its serializer: its repr), the writes kept as the Postgres and sqlite
savers keep them (a task's write at an index is stored once, unless all of its writes are of
the special channels, which replace). A call that failed or was cancelled makes the copy unusable, as does a sync write,
and the state is then read from storage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)

Key = tuple[str, int]


class RunCheckpoints(BaseCheckpointSaver[Any]):
    def __init__(self, saver: BaseCheckpointSaver[Any], thread_id: str) -> None:
        super().__init__(serde=saver.serde)
        self.saver = saver
        self._thread_id = thread_id
        self._last: tuple[RunnableConfig, Checkpoint, CheckpointMetadata, RunnableConfig | None] | None = None
        # Writes by the id of the checkpoint they were made against: a step's writes may be
        # stored before the checkpoint they belong to (the loop saves both in the background).
        self._writes: dict[str, dict[Key, tuple[str, str, Any]]] = {}
        self._usable = True

    @property
    def config_specs(self) -> list[Any]:
        return self.saver.config_specs

    def get_next_version(self, current: Any, channel: None) -> Any:
        return self.saver.get_next_version(current, channel)

    def _at_root(self, config: RunnableConfig) -> bool:
        """Whether `config` is of this thread's root graph (not of a subgraph, nor another thread)."""
        conf = config.get("configurable") or {}
        return conf.get("thread_id") == self._thread_id and not conf.get("checkpoint_ns")

    # Writes: stored, then kept

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        try:
            stored = await self.saver.aput(config, checkpoint, metadata, new_versions)
        except BaseException:
            self._usable = False
            raise
        if self._at_root(config):
            parent = config["configurable"].get("checkpoint_id")
            parent_config: RunnableConfig | None = (
                {"configurable": {"thread_id": self._thread_id, "checkpoint_ns": "", "checkpoint_id": parent}}
                if parent
                else None
            )
            self._last = (stored, checkpoint, metadata, parent_config)
            newest = checkpoint["id"]
            self._writes = {cid: w for cid, w in self._writes.items() if cid >= newest}
        return stored

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        try:
            await self.saver.aput_writes(config, writes, task_id, task_path)
        except BaseException:
            self._usable = False
            raise
        checkpoint_id = config["configurable"].get("checkpoint_id") if self._at_root(config) else None
        if checkpoint_id is None or (self._last is not None and checkpoint_id < self._last[1]["id"]):
            return
        kept = self._writes.setdefault(checkpoint_id, {})
        replace = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        for idx, (channel, value) in enumerate(writes):
            key = (task_id, WRITES_IDX_MAP.get(channel, idx))
            if replace or key not in kept:
                if isinstance(value, BaseException):
                    # As the saver reads an error back. Others come back alike (a tuple as a
                    # list at most, the same in the state's JSON): not encoded twice.
                    value = self.serde.loads_typed(self.serde.dumps_typed(value))
                kept[key] = (task_id, channel, value)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        self._usable = False
        return self.saver.put(config, checkpoint, metadata, new_versions)

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self._usable = False
        self.saver.put_writes(config, writes, task_id, task_path)

    # Reads: from storage, except the run's last checkpoint once it ended

    def last(self) -> CheckpointTuple | None:
        """The thread's latest checkpoint as the run left it, if this copy can stand for it."""
        if not self._usable or self._last is None:
            return None
        config, checkpoint, metadata, parent = self._last
        writes = self._writes.get(checkpoint["id"], {})
        # In the order the sqlite saver reads them back (Postgres's is unspecified).
        return CheckpointTuple(config, checkpoint, metadata, parent, [writes[key] for key in sorted(writes)])

    def forget(self) -> None:
        """What the run wrote is no longer the thread's latest (its checkpoints were deleted)."""
        self._usable = False

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self.saver.aget_tuple(config)

    def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        return self.saver.alist(config, filter=filter, before=before, limit=limit)

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.saver.get_tuple(config)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        return self.saver.list(config, filter=filter, before=before, limit=limit)

    async def aget_delta_channel_history(self, *, config: RunnableConfig, channels: Sequence[str]) -> Any:
        return await self.saver.aget_delta_channel_history(config=config, channels=channels)

    def get_delta_channel_history(self, *, config: RunnableConfig, channels: Sequence[str]) -> Any:
        return self.saver.get_delta_channel_history(config=config, channels=channels)

    async def adelete_thread(self, thread_id: str) -> None:
        self._usable = False
        await self.saver.adelete_thread(thread_id)

    def delete_thread(self, thread_id: str) -> None:
        self._usable = False
        self.saver.delete_thread(thread_id)


class LastCheckpoint(RunCheckpoints):
    """Reads the thread's latest root checkpoint from a run's copy, everything else from
    storage: for reading the thread's state once its run ended."""

    def __init__(self, saver: BaseCheckpointSaver[Any], last: CheckpointTuple) -> None:
        super().__init__(saver, last.config["configurable"]["thread_id"])
        self._fixed = last

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        if self._at_root(config) and not config["configurable"].get("checkpoint_id"):
            return self._fixed
        return await self.saver.aget_tuple(config)
