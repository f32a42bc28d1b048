"""Small helpers shared by the core and the edges."""

from __future__ import annotations

import errno
import os
import socket
import time
import uuid

from gateway.errors import StartupError


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
