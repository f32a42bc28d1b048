"""The reference server, `langgraph dev` from .venv-ref, serving tests/graphs/protocol.json from a
scratch folder (it resolves graph paths against its working directory)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests._langgraph_dev import absolute_config, langgraph_dev
from tests.protocol.conftest import PROTOCOL_CONFIG


@contextmanager
def reference_server(folder: Path) -> Iterator[str]:
    with langgraph_dev(absolute_config(PROTOCOL_CONFIG, folder), folder, jobs=4) as url:
        yield url
