"""The Agent Server docs' owner-only example, with a few users: every thread, run and search
is scoped to its owner; assistants are readable by every user; deleting a thread needs the
`threads:delete` permission; `Bearer banned` is refused with 403, anything unknown with 401."""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()

USERS: dict[str, dict[str, Any]] = {
    "alice-token": {"identity": "alice", "permissions": ["threads:delete"], "display_name": "Alice"},
    "bob-token": {"identity": "bob", "permissions": ["threads:delete"]},
    "carol-token": {"identity": "carol", "permissions": []},
}


@auth.authenticate
async def authenticate(authorization: str | None, headers: dict[bytes, bytes], method: str, path: str) -> Any:
    if authorization == "Bearer banned":
        raise Auth.exceptions.HTTPException(status_code=403, detail="This token is banned")
    scheme, _, token = (authorization or "").partition(" ")
    user = USERS.get(token) if scheme.lower() == "bearer" else None
    if user is None:
        raise Auth.exceptions.HTTPException(status_code=401, detail="Invalid or missing token")
    return {**user, "tenant": headers.get(b"x-tenant", b"").decode(), "seen": f"{method} {path}"}


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Auth.types.FilterType:
    # Stamps the owner on what is created (threads, runs) and scopes every other action to it.
    filters = {"owner": ctx.user.identity}
    metadata = value.setdefault("metadata", {})
    metadata.update(filters)
    return filters


@auth.on.threads.delete
async def delete_own_with_permission(ctx: Auth.types.AuthContext, value: Any) -> Auth.types.FilterType | bool:
    if "threads:delete" not in ctx.permissions:
        return False
    return {"owner": ctx.user.identity}


@auth.on.assistants
async def assistants_for_everyone(ctx: Auth.types.AuthContext, value: Any) -> None:
    return None
