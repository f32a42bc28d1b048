"""Small helpers shared by the core and the edges."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

from gateway.shared.errors import BadRequest, InvalidArgument, StartupError, shown

# Credentials a request may carry once only. With two `Authorization` (or `x-api-key`) headers,
# which one counts is up to whoever reads them (most frameworks and proxies take the first, a
# dict of the headers keeps the last), so a proxy in front may check one and the gateway honour
# the other. Both edges refuse such a request rather than pick either.
CREDENTIALS = frozenset({"authorization", "x-api-key"})

T = TypeVar("T")


async def within(seconds: float | None, awaitable: Awaitable[T]) -> T:
    """`asyncio.wait_for(awaitable, seconds)`, without its defect on Python 3.11: there a
    cancel that arrives as the awaited thing completes is lost, and the cancelled task goes on
    as if nothing had happened (a stream whose client left stayed on its thread that way).
    TimeoutError once `seconds` have passed; None waits for as long as it takes."""
    async with asyncio.timeout(seconds):
        return await awaitable


# Kept until they end, or the loop could collect them mid-way.
_CANCELLING: set[asyncio.Task[None]] = set()


def cancel_for_good(tasks: Iterable[asyncio.Task[Any]], every: float = 0.25) -> None:
    """Cancels `tasks`, and cancels again every `every` seconds those still running, until each
    has ended. On Python 3.11 a library can lose a cancel: asyncio.wait_for does when the thing
    it waits for completes at that moment, and psycopg_pool waits for a connection with it, so a
    stream cancelled as it got one would go on. Nothing here awaits: the caller may be in a
    cancelled scope."""
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    if not pending:
        return

    async def again() -> None:
        while pending:
            done, _ = await asyncio.wait(pending, timeout=every)
            pending.difference_update(done)
            for task in pending:
                task.cancel()

    watcher = asyncio.get_running_loop().create_task(again())
    _CANCELLING.add(watcher)
    watcher.add_done_callback(_CANCELLING.discard)


def uuid7() -> str:
    """A time-ordered UUIDv7, as the LangGraph Agent Server gives runs and threads."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def digits(value: str) -> bool:
    """Whether `value` is ASCII digits only: str.isdigit() also takes "³" and "١", which int()
    refuses or reads as another number; what a client sends is checked with this instead."""
    return value.isascii() and value.isdigit()


def is_uuid(value: str) -> bool:
    """A UUID in its canonical spelling: other spellings ("urn:uuid:...", braces, no dashes)
    would be stored as different ids for the same UUID."""
    try:
        return str(uuid.UUID(value)) == value.lower()
    except (ValueError, TypeError, AttributeError):
        return False


def run_base_ms(run_id: str) -> int:
    """The millisecond part of a run's event ids: its UUIDv7's timestamp."""
    return int(uuid.UUID(run_id).int >> 80)


def id_part(digits: str, value: str, field: str, limit: int) -> int:
    """A number in the event id `value` of a client's `field`, refused past `limit` before
    int(), which fails on thousands of digits."""
    digits = digits.lstrip("0") or "0"
    if len(digits) > len(str(limit)) or int(digits) > limit:
        raise InvalidArgument(f"{field} {shown(value)} is out of range: its numbers are at most {limit}")
    return int(digits)


def check_port(what: str, host: str, port: int, option: str, *, reuse_port: bool = False) -> None:
    """Raises the one-line start-up error if `port` cannot be bound as a server would bind it
    (gRPC's own failure is a line of C-core log and an error that does not say why)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise cannot_listen(what, host, port, option, exc) from None


def cannot_listen(what: str, host: str, port: int, option: str, error: OSError | None = None) -> StartupError:
    """The one-line start-up error for a port that cannot be listened on."""
    if error is not None and error.errno == errno.EADDRINUSE:
        reason = (
            f"port {port} is in use by another program (another gateway? `langgraph dev` also uses 2024); "
            f"choose another with {option}, or 0 for a free one"
        )
    elif error is not None:
        reason = error.strerror or str(error)
    else:
        reason = "the address cannot be used"
    return StartupError(f"cannot listen for {what} on {host}:{port}: {reason}")


def repeated_credential(names: Iterable[str | bytes]) -> str | None:
    """The first credential header (or gRPC metadata key) of `names` given more than once."""
    seen: set[str] = set()
    for raw in names:
        name = (raw.decode("latin-1") if isinstance(raw, bytes) else raw).lower()
        if name in CREDENTIALS:
            if name in seen:
                return name
            seen.add(name)
    return None


def repeated(name: str, what: str) -> BadRequest:
    """The refusal of a repeated credential (HTTP 400, INVALID_ARGUMENT); `what` is "header"
    or "metadata"."""
    return BadRequest(f"{name} {what} is given more than once: send one")
