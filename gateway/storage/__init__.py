"""Persistence of assistants, threads, runs and the event log behind narrow protocols, and
`open(settings)`, which picks the backends a deployment keeps them in."""

from gateway.storage.backends import Backends
from gateway.storage.backends import open_backends as open
from gateway.storage.base import THREAD_SORT_KEYS, EventLog, RecordStore, Storage
from gateway.storage.sqlite import SqliteStorage

__all__ = ["THREAD_SORT_KEYS", "Backends", "EventLog", "RecordStore", "SqliteStorage", "Storage", "open"]
