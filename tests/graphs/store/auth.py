"""Store auth as the Agent Server's docs advise it: each user's items live under their own
identity, which the handler puts in front of whatever namespace the client names; `mallory`
may not use the store; `auditor`'s searches see only items marked public. The token is the
identity (`Bearer alice`); no token is 401."""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Auth.exceptions.HTTPException(status_code=401, detail="Invalid or missing token")
    return token


@auth.on.store()
async def own_namespace(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Auth.types.FilterType | None:
    if ctx.user.identity == "mallory":
        raise Auth.exceptions.HTTPException(status_code=403, detail="mallory may not use the store")
    value["namespace"] = (ctx.user.identity, *(value.get("namespace") or ()))
    if ctx.action == "search" and ctx.user.identity == "auditor":
        return {"public": True}
    return None
