"""Readiness: `GET /ok?check_db=1` asks each backend the process depends on to answer (sqlite or
Postgres, Redis; the bridge: the gateway behind it), as the LangGraph Agent Server's
`/ok?check_db=1` does, and names what failed. Plain `/ok` stays a liveness check that touches
nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from gateway.shared.util import within

logger = logging.getLogger("gateway.health")

# Seconds each backend gets to answer, as the Agent Server's HEALTHCHECK_TIMEOUT_SECONDS.
CHECK_TIMEOUT = 3.0

ServiceHealth = Literal["healthy", "unhealthy"]
Check = Callable[[], Awaitable[Any]]


class Health:
    def __init__(self, checks: Mapping[str, Check], *, draining: Callable[[], bool] | None = None) -> None:
        self._checks = dict(checks)
        self._draining = draining

    async def check(self) -> tuple[bool, dict[str, Any]]:
        """(ready, the body): every backend answered, and the process is not draining."""
        names = list(self._checks)
        results = await asyncio.gather(
            *(within(CHECK_TIMEOUT, self._checks[name]()) for name in names), return_exceptions=True
        )
        services: dict[str, ServiceHealth] = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                reason = f"no answer within {CHECK_TIMEOUT:.0f} s" if isinstance(result, TimeoutError) else result
                logger.warning("health check: %s is unhealthy: %s", name, reason)
                services[name] = "unhealthy"
            else:
                services[name] = "healthy"
        ready = all(status == "healthy" for status in services.values())
        body: dict[str, Any] = {"ok": ready, "services": services}
        if self._draining is not None and self._draining():
            # A draining process takes no new runs: a load balancer should send them elsewhere.
            body["ok"] = ready = False
            body["draining"] = True
        return ready, body
