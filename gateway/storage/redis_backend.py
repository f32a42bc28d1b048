"""Redis for the scale-out deployment: every run's events in a Redis stream of its own (the log
any process replays and tails), and the signals between processes (pub/sub, plus cancel marks).

A run's stream entries carry the ids clients already see: `<ms>-<seq>`, where `<ms>` is fixed
per run, so a stream id is an event id and reading on from one is a resume. Writes of a batch of
events are pipelined: one round trip per batch. Streams expire (`EXPIRE`) a retention after
their last write.

Waiting for new entries is multiplexed: one blocking XREAD per process over every stream a
reader waits on (`_Tail`), instead of a connection per reader; a reader that registers a new
stream pokes the blocked read awake through a small wake stream of the process's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import uuid
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.process.metrics import backend_error
from gateway.shared.errors import Unavailable
from gateway.shared.records import Event
from gateway.shared.util import run_base_ms
from gateway.storage.signals import Handler, SignalKind, decode, encode

logger = logging.getLogger("gateway.redis")

REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
_BLOCK_MS = 5_000
# How long closing waits for the signals published before it to go out.
_CLOSE_FLUSH_SECONDS = 2.0


# Connections a process opens to Redis at most, besides its tail's and its subscriber's; a
# command that finds none free waits for one (up to _POOL_TIMEOUT s) instead of failing, as
# redis-py's default pool does past its 100.
_POOL_SIZE = 64
_POOL_TIMEOUT = 10


def connect(url: str) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=_POOL_SIZE, timeout=_POOL_TIMEOUT, health_check_interval=30, socket_keepalive=True
    )
    return aioredis.Redis.from_pool(pool)


async def ping(client: aioredis.Redis, url: str) -> None:
    try:
        await client.ping()
    except REDIS_ERRORS as exc:
        backend_error("redis")
        raise Unavailable(f"cannot connect to Redis at {url}: {exc}") from None


def _entry_id(run_id: str, seq: int) -> str:
    return f"{run_base_ms(run_id)}-{seq}"


def _seq(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.rpartition("-")[2])


def _event(entry_id: bytes, fields: dict[bytes, bytes]) -> Event:
    ns = fields.get(b"s", b"")
    return Event(_seq(entry_id), fields[b"n"].decode(), tuple(ns.decode().split("|")) if ns else (), fields[b"d"])


# Appends the events of one or more runs in one command: ARGV[1] the retention in seconds;
# then for each stream of KEYS, the number of its events and (id, name, namespace, data) for
# each. One command for every run's pending events, packed here, rather than an XADD each
# through redis-py: its packing and parsing of each command cost more of the gateway's CPU
# than the rest of an event's way through it (docs/performance.md). An entry already there (a batch written again after a failed attempt)
# is skipped; any other error ends the script with it.
_APPEND = b"""
local at = 2
for k = 1, #KEYS do
  local key = KEYS[k]
  local count = tonumber(ARGV[at])
  at = at + 1
  for j = 1, count do
    local added = redis.pcall('XADD', key, ARGV[at], 'n', ARGV[at + 1], 's', ARGV[at + 2], 'd', ARGV[at + 3])
    if type(added) == 'table' and added.err and not string.find(added.err, 'equal or smaller', 1, true) then
      return added
    end
    at = at + 4
  end
  redis.call('EXPIRE', key, ARGV[1])
end
return 1
"""
_APPEND_SHA = hashlib.sha1(_APPEND).hexdigest().encode()


def _command(name: bytes, script: bytes, args: Sequence[bytes]) -> list[bytes]:
    """`name script args...` in RESP, the way Redis reads a command."""
    out = [b"*%d\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(args) + 2, len(name), name, len(script), script)]
    for arg in args:
        out += (b"$%d\r\n" % len(arg), arg, b"\r\n")
    return [b"".join(out)]


class _Appends:
    """The events waiting to be written, for every run of the process, and who waits on them."""

    __slots__ = ("done", "events", "keys")

    def __init__(self) -> None:
        self.keys: list[bytes] = []
        self.events: list[list[bytes]] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def command(self, name: bytes, script: bytes, retention: int) -> list[bytes]:
        args = [b"%d" % len(self.keys), *self.keys, b"%d" % retention]
        for events in self.events:
            args.append(b"%d" % (len(events) // 4))
            args += events
        return _command(name, script, args)


class RedisEventLog:
    """The event log of every run (the bus's log in the scale-out deployment)."""

    def __init__(self, client: aioredis.Redis, url: str, prefix: str, *, retention: float) -> None:
        # redis-py's return types are unions of every reply type: replies are checked here.
        self._client: Any = client
        self._prefix = prefix
        self._retention = max(int(retention), 1)
        self._tail = _Tail(url, prefix)
        # What the next command writes, and the task writing (None when nothing is pending).
        self._next: _Appends | None = None
        self._writer: asyncio.Task[None] | None = None

    def key(self, run_id: str) -> str:
        return f"{self._prefix}run:{run_id}:events"

    async def start(self) -> None:
        await self._tail.start()

    async def close(self) -> None:
        await self._tail.close()

    async def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        """Writes the events with those that other runs of the process publish meanwhile: one
        command in flight at a time, and everything that came while it was, in the next."""
        base = run_base_ms(run_id)
        fields: list[bytes] = []
        for e in events:
            fields += (b"%d-%d" % (base, e.seq), e.name.encode(), "|".join(e.ns).encode(), e.data)
        if self._next is None:
            self._next = _Appends()
        appends = self._next
        appends.keys.append(self.key(run_id).encode())
        appends.events.append(fields)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="redis-appends")
        await asyncio.shield(appends.done)

    async def _write(self) -> None:
        try:
            while self._next is not None:
                appends, self._next = self._next, None
                try:
                    await self._send(appends)
                except Exception as exc:
                    appends.done.set_exception(exc)
                    # Each waiter sees it; none leaves it unretrieved.
                    appends.done.exception()
                except BaseException:
                    appends.done.cancel()
                    if self._next is not None:
                        self._next.done.cancel()
                        self._next = None
                    raise
                else:
                    appends.done.set_result(None)
        finally:
            self._writer = None

    async def _send(self, appends: _Appends) -> None:
        pool = self._client.connection_pool
        try:
            conn = await pool.get_connection()
            try:
                try:
                    await conn.send_packed_command(appends.command(b"EVALSHA", _APPEND_SHA, self._retention))
                    await conn.read_response()
                except NoScriptError:  # Redis restarted, or its scripts were flushed
                    await conn.send_packed_command(appends.command(b"EVAL", _APPEND, self._retention))
                    await conn.read_response()
            finally:
                await pool.release(conn)
        except REDIS_ERRORS as exc:
            backend_error("redis")
            raise Unavailable(f"Redis is unreachable: {exc}") from None

    async def retain(self, run_id: str, seconds: float) -> None:
        """Keeps the run's events for `seconds` more, and no longer."""
        with contextlib.suppress(*REDIS_ERRORS):
            await self._client.expire(self.key(run_id), max(int(seconds), 1))

    async def read_events(self, run_id: str, after: int, limit: int) -> list[Event]:
        try:
            entries = await self._client.xrange(
                self.key(run_id), min=f"({_entry_id(run_id, after)}", max="+", count=limit
            )
        except REDIS_ERRORS as exc:
            backend_error("redis")
            raise Unavailable(f"Redis is unreachable: {exc}") from None
        return [_event(entry_id, fields) for entry_id, fields in entries]

    async def last_seq(self, run_id: str) -> int:
        try:
            entries = await self._client.xrevrange(self.key(run_id), max="+", min="-", count=1)
        except REDIS_ERRORS as exc:
            backend_error("redis")
            raise Unavailable(f"Redis is unreachable: {exc}") from None
        return _seq(entries[0][0]) if entries else 0

    async def wait_events(self, run_id: str, after: int, seconds: float) -> bool:
        """Returns when the run's stream may hold entries after `after`, or False after `seconds`."""
        return await self._tail.wait(self.key(run_id), _entry_id(run_id, after), seconds)

    async def delete_events(self, run_id: str) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            await self._client.delete(self.key(run_id))

    async def prune_events(self, older_than: float) -> int:
        return 0  # each stream expires on its own


class _Tail:
    """One blocking XREAD for every stream this process's readers wait on."""

    def __init__(self, url: str, prefix: str) -> None:
        # Its own connection: a blocking read holds it for up to _BLOCK_MS.
        self._client: Any = aioredis.Redis.from_url(url, socket_timeout=None, socket_keepalive=True)
        self._wake_key = f"{prefix}tail:{uuid.uuid4().hex}"
        self._waiting: dict[str, dict[asyncio.Future[None], str]] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake_id = "0-0"

    async def start(self) -> None:
        self._wake_id = (await self._client.xadd(self._wake_key, {"x": 1}, maxlen=16)).decode()
        await self._client.expire(self._wake_key, 3600)
        self._task = asyncio.create_task(self._run(), name="redis-tail")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(*REDIS_ERRORS):
            await self._client.delete(self._wake_key)
        await self._client.aclose()

    async def wait(self, key: str, after_id: str, seconds: float) -> bool:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        known = key in self._waiting
        self._waiting.setdefault(key, {})[future] = after_id
        try:
            if not known:
                with contextlib.suppress(*REDIS_ERRORS):
                    await self._client.xadd(self._wake_key, {"x": 1}, maxlen=16)
            try:
                async with asyncio.timeout(seconds):
                    await future
            except TimeoutError:
                return False
            return True
        finally:
            waiting = self._waiting.get(key)
            if waiting is not None:
                waiting.pop(future, None)
                if not waiting:
                    del self._waiting[key]

    async def _run(self) -> None:
        while True:
            streams = {self._wake_key: self._wake_id}
            for key, futures in self._waiting.items():
                streams[key] = min(futures.values(), key=_entry_key)
            try:
                response = await self._client.xread(streams, count=1, block=_BLOCK_MS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                backend_error("redis")
                logger.warning("waiting for run events failed (retrying): %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(0.5)
                continue
            for raw_key, entries in response or ():
                key = raw_key.decode()
                if not entries:
                    continue
                entry_id = entries[0][0].decode()
                if key == self._wake_key:
                    self._wake_id = entry_id
                    continue
                for future, after_id in list(self._waiting.get(key, {}).items()):
                    if _entry_key(after_id) < _entry_key(entry_id) and not future.done():
                        future.set_result(None)


def _entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class RedisSignals:
    """Signals over one pub/sub channel; cancel marks as keys that expire.

    A publisher does not wait for Redis: a signal is a hint, and the runs' admissions, which
    publish them, must not wait a round trip on a busy loop for one. One task sends them, in the
    order they were published, everything published while it waits in the next pipeline."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client: Any = client
        self._channel = f"{prefix}signals"
        self._prefix = prefix
        self._handlers: list[Handler] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        # Signals not yet sent, and the task sending them (None when there are none).
        self._outbox: list[tuple[SignalKind, bytes]] = []
        self._sender: asyncio.Task[None] | None = None
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    async def publish(self, kind: SignalKind, payload: dict[str, Any]) -> None:
        self._outbox.append((kind, encode(kind, payload)))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send(), name="redis-signals-out")

    async def _send(self) -> None:
        try:
            while self._outbox:
                batch, self._outbox = self._outbox, []
                try:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for _, message in batch:
                            pipe.publish(self._channel, message)
                        await pipe.execute()
                except REDIS_ERRORS as exc:
                    backend_error("redis")
                    # Hints lost: storage has the truth and the scheduler polls it.
                    kinds = ", ".join(sorted({kind for kind, _ in batch}))
                    logger.warning("could not publish %d signals (%s): %s", len(batch), kinds, exc)
        finally:
            self._sender = None

    async def mark_cancel(self, run_id: str, action: str) -> None:
        try:
            await self._client.set(f"{self._prefix}run:{run_id}:cancel", action, ex=3600)
        except REDIS_ERRORS as exc:
            backend_error("redis")
            raise Unavailable(f"Redis is unreachable: {exc}") from None

    async def cancel_mark(self, run_id: str) -> str | None:
        try:
            value = await self._client.getdel(f"{self._prefix}run:{run_id}:cancel")
        except REDIS_ERRORS:
            backend_error("redis")
            return None
        return value.decode() if value is not None else None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="redis-signals")
        async with asyncio.timeout(10):
            await self._ready.wait()

    async def close(self) -> None:
        sender = self._sender
        if sender is not None:
            # What was published before closing goes out (a draining process's last wake).
            await asyncio.wait([sender], timeout=_CLOSE_FLUSH_SECONDS)
            sender.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self._ready.set()
                async for message in pubsub.listen():
                    self._dispatch(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                backend_error("redis")
                logger.warning("signals from other processes are interrupted (retrying): %s", exc)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _dispatch(self, data: Any) -> None:
        if not isinstance(data, bytes):
            return
        signal = decode(data)
        if signal is None:
            return
        kind, payload = signal
        for handler in self._handlers:
            try:
                handler(kind, payload)
            except Exception:
                logger.exception("a %s signal's handler failed", kind)
