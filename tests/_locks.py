"""A lock between the suite's processes (pytest-xdist's workers, and other runs of the suite on
the same machine) for set-up done once in a shared place: a venv, a build."""

from __future__ import annotations

import fcntl
import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(guarded: Path) -> Iterator[None]:
    """Holds an exclusive lock named after `guarded` (a lock file in the system's temporary
    folder, so that it needs no write access next to it) until the block ends."""
    key = hashlib.sha256(str(guarded.resolve()).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"gateway-tests-{guarded.name}-{key}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
