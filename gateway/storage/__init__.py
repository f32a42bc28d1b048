"""Persistence of assistants, threads, runs and the event log behind narrow protocols."""

from gateway.storage.base import THREAD_SORT_KEYS, EventLog, RecordStore, Storage
from gateway.storage.sqlite import SqliteStorage

__all__ = ["THREAD_SORT_KEYS", "EventLog", "RecordStore", "SqliteStorage", "Storage"]
