"""One process owns a sqlite file: the queue on it has no leases that another process would
renew, so a second process on the same file would take every run it finds `running` for one
whose process died, and run it again while the first still runs it.

The owner holds an exclusive `flock` on a lock file beside the database for as long as the
storage is open; the kernel releases it when the process dies, however it dies, so the next
process to start takes the runs over only once their owner is really gone."""

from __future__ import annotations

import fcntl
import os

from gateway.shared.errors import StartupError
from gateway.shared.util import digits


def lock_path(db: str) -> str | None:
    """The lock file of the sqlite database `db`; None for one that lives in memory only."""
    if db in ("", ":memory:"):
        return None
    return f"{db}.lock"


class FileOwner:
    def __init__(self, db: str) -> None:
        self.db = db
        self.path = lock_path(db)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Owns the database, or raises StartupError naming the process that does."""
        if self.path is None or self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StartupError(
                f"cannot use the database {self.db}: cannot open {self.path}: {exc.strerror}"
                " (its folder must exist and be writable)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _pid(fd)
            os.close(fd)
            raise StartupError(
                f"the database {self.db} is in use by another gateway process ({owner}): one process owns a "
                "sqlite file; stop that one first, give this one another --db, or share runs between processes "
                "with --database-url and --redis-url"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # Who owns it, for the next process that is refused.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _pid(fd: int) -> str:
    # The owner writes its pid just after it takes the lock: a process refused in between
    # finds the file still empty.
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return f"pid {text}" if digits(text) else "pid unknown"
