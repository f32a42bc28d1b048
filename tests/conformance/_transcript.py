"""A case run on one server, written down as a list of lines that compare with `==`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from tests._normalise import Normaliser
from tests.conformance import _normalise
from tests.conformance._cases import Case
from tests.http._sse import parse

# ("status", 200), ("header", "location", "/threads/<id1>/runs/<id2>/stream"),
# then ("event", "updates", {...}) for a stream, or ("body", {"detail": "str"}) for an error.
Line = tuple[Any, ...]

# The headers clients act on: the SDKs check the media type and reconnect through `location`
# (the JS SDK takes the run id from `content-location`); proxies must neither cache nor buffer.
HEADERS = ("content-type", "location", "content-location", "cache-control", "x-accel-buffering")
_LOCATIONS = ("location", "content-location")
_THREAD_PREFIX = re.compile(r"^/threads/[^/]+(?=/runs/)")


def lines(status: int, headers: Mapping[str, str], raw: bytes, *, thread_id: str | None = None) -> list[Line]:
    """One response as compared; `thread_id` is the thread the run was posted to, if any."""
    normaliser = Normaliser()
    if thread_id is not None:
        # Numbered first, so that `location` must name this thread (and then the streamed run).
        normaliser.text(thread_id)
    out: list[Line] = [("status", status)]
    for name in HEADERS:
        value = headers.get(name)
        if value is not None and name in _LOCATIONS and thread_id is None:
            value = _run_path(value)
        out.append(("header", name, None if value is None else normaliser.text(value)))
    if status != 200:
        return [*out, ("body", _shape(_json_or_text(raw)))]
    try:
        events = parse(raw)
    except AssertionError as exc:
        # The framing is part of the contract (CRLF, `event:` then one `data:` line): a stream the
        # project's parser refuses cannot match, and the refusal says where it went wrong.
        return [*out, ("unparsable", str(exc)[:400])]
    # Event ids are not compared: the reference sends none on runs that are not resumable.
    return [*out, *(("event", *_normalise.event(normaliser, e.event, e.data)) for e in events)]


def _run_path(location: str) -> str:
    # The client of a stateless run knows no thread and reconnects to whatever run path it is
    # given. The reference always answers `/runs/{run_id}/stream`; ours names the thread's route
    # when the thread outlives the run (`on_completion: keep`). Both must name the streamed run.
    return _THREAD_PREFIX.sub("", location)


def _shape(value: Any) -> Any:
    # Error messages are each server's own wording (ours name the field); clients rely on the
    # status code and on the body being `{"detail": "..."}`.
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def _json_or_text(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode(errors="replace")


async def transcript(client: httpx.AsyncClient, case: Case) -> list[Line]:
    """Runs `case` on the server behind `client`; raises when a setup request fails."""
    path = "/runs/stream"
    thread_id: str | None = None
    if case.thread:
        created = await client.post("/threads", json={})
        created.raise_for_status()
        thread_id = str(created.json()["thread_id"])
        path = f"/threads/{thread_id}/runs/stream"
        for body in case.before:
            async with client.stream("POST", path, json=body) as before:
                before.raise_for_status()
                await before.aread()
    async with client.stream("POST", path, json=case.body) as response:
        raw = await response.aread()
    return lines(response.status_code, response.headers, raw, thread_id=thread_id)
