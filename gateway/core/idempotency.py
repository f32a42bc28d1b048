"""Idempotent creation (AIP-155): a run or thread created with a client-chosen `request_id`
is stored with a key, unique per caller and request id, in the transaction that creates it.
A repeat within the window finds the key and gets what the first call made; one with another
body is RequestIdReused. Keys outlive a restart and are shared by every process on the same
database; expired ones are pruned with the event log."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any
from uuid import UUID

import orjson

from gateway.auth import current_caller
from gateway.shared.errors import InvalidArgument
from gateway.shared.records import RequestKey, RunCreate

# What a run-create request holds that is not the caller's to choose, or is the key itself.
_NOT_BODY = ("request_id", "auth_user", "auth_permissions")


def request_key(request_id: str | None, kind: str, body: Any, window: float) -> RequestKey | None:
    """The key of a creation of a `kind` ("run", "thread") with `body`; None without an id."""
    if not request_id:
        return None
    try:
        normal = str(UUID(request_id))
    except ValueError:
        raise InvalidArgument(f"request_id {request_id!r} is not a UUID") from None
    caller = current_caller()
    identity = caller.user.identity if caller is not None else ""
    digest = hashlib.sha256(kind.encode() + b"\0" + orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    return RequestKey(identity, normal, digest.hexdigest(), window)


def run_body(req: RunCreate) -> dict[str, Any]:
    """A run request as the client sent it, before the core fills anything in."""
    body = dataclasses.asdict(req)
    for name in _NOT_BODY:
        body.pop(name)
    if req.on_completion == "keep":
        # A stateless run that keeps its thread: the HTTP edge gave it a new thread id, which
        # a repeat's differs from.
        body["thread_id"] = None
    return body
