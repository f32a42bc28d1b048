"""Logging: plain lines for a terminal, or one JSON object per line (`--log-format json`) for a
log pipeline. Every line written while a run executes carries its run, thread and assistant ids
(a context variable set by the run's task and inherited by what it starts); a line about a run
written elsewhere passes them as `extra`."""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

_RUN_FIELDS = ("run_id", "thread_id", "assistant_id", "attempt")
_run: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("gateway_run", default=None)


@contextmanager
def run_context(**ids: Any) -> Iterator[None]:
    """The ids of the run the current task works for, on every line it logs."""
    token = _run.set(ids)
    try:
        yield
    finally:
        _run.reset(token)


class _RunFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ids = _run.get()
        if ids:
            for key, value in ids.items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _RUN_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = [f"{key}={getattr(record, key)}" for key in ("run_id", "thread_id") if getattr(record, key, None)]
        return f"{text} [{' '.join(ids)}]" if ids else text


def setup(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_RunFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
