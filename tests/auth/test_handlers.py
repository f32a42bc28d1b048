"""langgraph.json's Auth object run as the Agent Server runs it: the parameters authenticate
handlers ask for, what they return, the most specific @auth.on handler, and what its result
means. Plain async functions over a real langgraph_sdk Auth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import Auth

from gateway.auth import AuthHandlers, AuthUser, Caller, acting_as
from gateway.config.auth import load_auth
from gateway.shared.errors import NotFound, PermissionDenied, Refused, Unauthenticated
from gateway.shared.records import AccessFilter, Equals

AUTH = Path(__file__).resolve().parent.parent / "graphs" / "auth"


def scope(**headers: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/threads/search",
        "query_string": b"limit=3",
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


def caller(identity: str = "alice", *permissions: str) -> Caller:
    return Caller(AuthUser({"identity": identity}), permissions)


async def test_authenticate_gets_the_parameters_it_names() -> None:
    seen: dict[str, Any] = {}
    auth = Auth()

    @auth.authenticate
    async def authenticate(
        authorization: str | None, headers: dict[bytes, bytes], method: str, path: str, query_params: Any, scopes: Any
    ) -> Any:
        seen.update(authorization=authorization, method=method, path=path, limit=query_params["limit"], scopes=scopes)
        seen["tenant"] = headers[b"x-tenant"]
        return {"identity": "alice", "permissions": ["read"], "role": "admin"}

    who = await AuthHandlers(auth).authenticate(scope(authorization="Bearer t", x_tenant="acme"))
    assert seen == {
        "authorization": "Bearer t",
        "method": "GET",
        "path": "/threads/search",
        "limit": "3",
        "scopes": [],
        "tenant": b"acme",
    }
    assert who.permissions == ("read",)
    assert who.user.identity == "alice" and who.user.display_name == "alice" and who.user.is_authenticated
    assert who.user.role == "admin" and who.user["role"] == "admin"


@pytest.mark.parametrize(
    ("result", "identity", "permissions"),
    [
        ("bob", "bob", ()),
        ({"identity": "bob"}, "bob", ()),
        ((["p"], {"identity": "bob"}), "bob", ("p",)),
        ({"identity": "bob", "permissions": ["p", "q"]}, "bob", ("p", "q")),
    ],
)
async def test_what_authenticate_may_return(result: Any, identity: str, permissions: tuple[str, ...]) -> None:
    auth = Auth()

    @auth.authenticate
    async def authenticate() -> Any:
        return result

    who = await AuthHandlers(auth).authenticate(scope())
    assert (who.user.identity, who.permissions) == (identity, permissions)


@pytest.mark.parametrize(
    ("raised", "error", "status"),
    [
        (Auth.exceptions.HTTPException(), Unauthenticated, 401),
        (Auth.exceptions.HTTPException(status_code=403, detail="no"), PermissionDenied, 403),
        (Auth.exceptions.HTTPException(status_code=429, headers={"Retry-After": "1"}), Refused, 429),
    ],
)
async def test_a_refusal_passes_its_status_through(raised: Exception, error: type, status: int) -> None:
    auth = Auth()

    @auth.authenticate
    async def authenticate() -> Any:
        raise raised

    with pytest.raises(error) as refused:
        await AuthHandlers(auth).authenticate(scope())
    assert refused.value.http_status == status
    if status == 429:
        assert refused.value.headers == {"Retry-After": "1"}


def test_handlers_the_gateway_cannot_call_stop_the_start() -> None:
    auth = Auth()

    @auth.authenticate
    async def authenticate(token: str) -> str:
        return token

    with pytest.raises(ValueError, match="token"):
        AuthHandlers(auth)


async def test_the_most_specific_handler_decides() -> None:
    auth = Auth()
    calls: list[str] = []

    @auth.authenticate
    async def authenticate() -> str:
        return "alice"

    @auth.on
    async def everything(ctx: Auth.types.AuthContext, value: Any) -> bool:
        calls.append(f"global {ctx.resource}.{ctx.action}")
        return False

    @auth.on.threads
    async def threads(ctx: Auth.types.AuthContext, value: Any) -> Any:
        calls.append(f"threads.{ctx.action}")
        return {"owner": ctx.user.identity}

    @auth.on.threads.create
    async def create(ctx: Auth.types.AuthContext, value: Any) -> None:
        calls.append("threads.create")
        value["metadata"]["owner"] = ctx.user.identity

    handlers = AuthHandlers(auth)
    value: dict[str, Any] = {"metadata": {}}
    with acting_as(caller()):
        assert await handlers.authorize("threads", "create", value) is None
        assert value == {"metadata": {"owner": "alice"}}
        assert await handlers.authorize("threads", "read", {}) == AccessFilter((Equals("owner", "alice"),))
        with pytest.raises(PermissionDenied):
            await handlers.authorize("assistants", "read", {})
    assert calls == ["threads.create", "threads.read", "global assistants.read"]
    assert handlers.uncovered() == []


async def test_what_a_handlers_result_means() -> None:
    auth = Auth()

    @auth.authenticate
    async def authenticate() -> str:
        return "alice"

    @auth.on.threads.read
    async def read(ctx: Auth.types.AuthContext, value: Any) -> Any:
        return value["result"]

    @auth.on.threads.delete
    async def delete(ctx: Auth.types.AuthContext, value: Any) -> None:
        assert "admin" in ctx.permissions, "admins only"

    @auth.on.threads.update
    async def update(ctx: Auth.types.AuthContext, value: Any) -> None:
        raise Auth.exceptions.HTTPException(status_code=404, detail="gone")

    handlers = AuthHandlers(auth)
    with acting_as(caller()):
        assert await handlers.authorize("threads", "read", {"result": None}) is None
        assert await handlers.authorize("threads", "read", {"result": True}) is None
        assert await handlers.authorize("threads", "read", {"result": {}}) is None
        with pytest.raises(PermissionDenied, match="Forbidden"):
            await handlers.authorize("threads", "read", {"result": False})
        with pytest.raises(PermissionDenied, match="admins only"):
            await handlers.authorize("threads", "delete", {})
        with pytest.raises(NotFound, match="gone"):
            await handlers.authorize("threads", "update", {})
    with acting_as(caller("root", "admin")):
        assert await handlers.authorize("threads", "delete", {}) is None
    # Outside an authenticated request nothing is allowed, rather than everything.
    with pytest.raises(Unauthenticated):
        await handlers.authorize("threads", "read", {"result": None})
    assert "threads.create" in handlers.uncovered() and "assistants.read" in handlers.uncovered()


def test_the_auth_object_is_loaded_as_the_agent_server_loads_it(tmp_path: Path) -> None:
    assert isinstance(load_auth("./auth.py:auth", AUTH), Auth)
    for ref, message in [
        ("./auth.ts:auth", "JavaScript"),
        ("./auth.py:missing", "not a langgraph_sdk Auth"),
        ("./nowhere.py:auth", "cannot load"),
        ("auth.py", "must be"),
    ]:
        with pytest.raises(ValueError, match=message):
            load_auth(ref, AUTH)
    (tmp_path / "lazy.py").write_text("from langgraph_sdk import Auth\nauth = Auth()\n")
    with pytest.raises(ValueError, match="no @auth.authenticate handler"):
        load_auth("./lazy.py:auth", tmp_path)
