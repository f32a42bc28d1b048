"""LangGraph's Postgres store on the storage's pool, its database errors as the gateway's (as
gateway.storage.postgres reports its own): what Postgres cannot hold is the client's 422, an
unreachable server 503. Its operations run on the pool's loop. Imported only for the Postgres
backend."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from langgraph.store.base import Op, Result
from langgraph.store.postgres.aio import AsyncPostgresStore
from psycopg_pool import PoolTimeout

from gateway.process.loops import IoLoop, on_io_loop
from gateway.shared.errors import InvalidArgument, Unavailable


@on_io_loop("abatch", "setup", "sweep_ttl")
class PooledPostgresStore(AsyncPostgresStore):
    def __init__(self, pool: Any, io: IoLoop, **kwargs: Any) -> None:
        super().__init__(pool, **kwargs)
        self.io = io

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        try:
            return await super().abatch(ops)
        except psycopg.DataError as exc:
            # A NUL character in a JSON string, say.
            raise InvalidArgument(f"the request holds a value the database cannot store: {exc}") from None
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise Unavailable(f"the database is unreachable: {exc}") from None
