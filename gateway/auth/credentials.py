"""Credentials a request may carry once only. With two `Authorization` (or `x-api-key`) headers,
which one counts is up to whoever reads them (most frameworks and proxies take the first, a dict
of the headers keeps the last), so a proxy in front may check one and the gateway honour the
other. Both edges refuse such a request rather than pick either."""

from __future__ import annotations

from collections.abc import Iterable

from gateway.errors import BadRequest

CREDENTIALS = frozenset({"authorization", "x-api-key"})


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


class RepeatedCredential(BadRequest):
    """A request with two of one credential (HTTP 400, INVALID_ARGUMENT); `what` is "header"
    or "metadata"."""

    def __init__(self, name: str, what: str) -> None:
        super().__init__(f"{name} {what} is given more than once: send one")
