"""Persistence of assistants, threads and runs behind a narrow interface."""

from gateway.storage.base import AssistantRecord, RunRecord, Storage, ThreadRecord, now_iso
from gateway.storage.sqlite import SqliteStorage

__all__ = ["AssistantRecord", "RunRecord", "SqliteStorage", "Storage", "ThreadRecord", "now_iso"]
