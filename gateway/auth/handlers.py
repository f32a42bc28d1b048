"""langgraph.json's `auth`: the langgraph_sdk `Auth` object of `auth.path`, its
`@auth.authenticate` handler run for every request of both edges, and its `@auth.on` handlers
run for every action on a thread, run, assistant and store item (and, once the gateway serves
them, cron), with the LangGraph Agent Server's parameters, precedence and results."""

from __future__ import annotations

import asyncio
import functools
import http
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, cast

from langgraph_sdk import Auth
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request

from gateway.auth.filters import InvalidFilter, parse_filter
from gateway.auth.user import Caller, as_user, current_caller
from gateway.shared.errors import GatewayError, NotFound, PermissionDenied, Refused, Unauthenticated
from gateway.shared.records import AccessFilter

logger = logging.getLogger("gateway.auth")

Resource = Literal["threads", "assistants", "crons", "store"]
Action = Literal["create", "read", "update", "delete", "search", "create_run", "put", "get", "list_namespaces"]
# The (resource, action) pairs the Agent Server dispatches; crons are wired for when the
# gateway serves them.
ACTIONS: dict[str, tuple[str, ...]] = {
    "threads": ("create", "read", "update", "delete", "search", "create_run"),
    "assistants": ("create", "read", "update", "delete", "search"),
    "crons": ("create", "read", "update", "delete", "search"),
    "store": ("put", "get", "search", "delete", "list_namespaces"),
}
# What an authenticate handler may ask for, by parameter name.
PARAMETERS = (
    "request",
    "body",
    "user",
    "path",
    "method",
    "scopes",
    "path_params",
    "query_params",
    "headers",
    "authorization",
    "scope",
)

Body = Callable[[], Awaitable[Any]]


def refusal(status: int, detail: Any, headers: Mapping[str, str] | None = None) -> GatewayError:
    """A handler's HTTPException as the error both edges send: its status and detail."""
    if not 400 <= status <= 599:
        return Refused(500, f"an auth handler refused with status {status}, which is not an error status")
    message = str(detail) if detail is not None else http.HTTPStatus(status).phrase
    error: GatewayError
    if status == 401:
        error = Unauthenticated(message)
    elif status == 403:
        error = PermissionDenied(message)
    elif status == 404:
        error = NotFound(message)
    else:
        return Refused(status, message, headers)
    error.headers = dict(headers or {})
    return error


def _caller(result: Any) -> Caller:
    """An authenticate handler's result: a user, (permissions, user), or a user with permissions."""
    if isinstance(result, tuple):
        if len(result) != 2:
            raise ValueError(f"an authenticate handler's tuple must be (permissions, user), not {len(result)} items")
        permissions, user = result
    elif isinstance(result, Mapping):
        permissions, user = result.get("permissions") or [], result
    else:
        permissions, user = getattr(result, "permissions", None) or [], result
    if isinstance(permissions, (str, bytes)) or not isinstance(permissions, (list, tuple, set, frozenset)):
        raise ValueError("an authenticate handler's permissions must be a list of strings")
    return Caller(as_user(user), tuple(str(p) for p in permissions))


def _parameters(fn: Callable[..., Any]) -> frozenset[str]:
    unsupported = [
        name
        for name, param in inspect.signature(fn).parameters.items()
        if name not in PARAMETERS and param.default is param.empty and param.kind not in (param.VAR_KEYWORD,)
    ]
    if unsupported:
        raise ValueError(
            f"the authenticate handler has parameters the gateway cannot pass: {', '.join(unsupported)} "
            f"(it passes {', '.join(PARAMETERS)})"
        )
    return frozenset(name for name in inspect.signature(fn).parameters if name in PARAMETERS)


class AuthHandlers:
    def __init__(self, auth: Auth) -> None:
        fn = auth._authenticate_handler
        assert fn is not None
        self._auth = auth
        self._parameters = _parameters(fn)
        self._authenticate: Callable[..., Awaitable[Any]] = (
            fn if inspect.iscoroutinefunction(fn) else functools.partial(asyncio.to_thread, fn)
        )
        self._cache: dict[tuple[str, str], Any] = {}

    @property
    def wants_body(self) -> bool:
        return "body" in self._parameters

    def uncovered(self) -> list[str]:
        """resource.action pairs no handler covers: every caller may do those."""
        return [
            f"{resource}.{action}"
            for resource, actions in ACTIONS.items()
            for action in actions
            if self._handler(resource, action) is None
        ]

    def waiting(self) -> list[str]:
        """Registered handlers for resources the gateway does not serve yet."""
        return sorted(f"{r}.{a}" for r, a in self._auth._handlers if r == "crons")

    async def authenticate(self, scope: Mapping[str, Any], body: Body | None = None) -> Caller:
        """Runs `@auth.authenticate` on a request given as an ASGI HTTP scope (over gRPC, one
        made from the call: method POST, the RPC's path, its metadata as headers)."""
        wanted = self._parameters
        headers = dict(scope.get("headers") or ())
        args: dict[str, Any] = {}
        if "request" in wanted:
            if scope.get("type") != "http":
                raise PermissionDenied(
                    "the authenticate handler takes `request`, which WebSocket connections do not have: take "
                    "`headers`, `authorization` or `scope` instead"
                )
            args["request"] = Request(dict(scope))
        if "body" in wanted:
            args["body"] = await body() if body is not None else None
        if "user" in wanted:
            args["user"] = None
        if "scopes" in wanted:
            args["scopes"] = []
        if "path" in wanted:
            args["path"] = scope.get("path", "")
        if "method" in wanted:
            # A WebSocket connection is its upgrade, a GET.
            args["method"] = scope.get("method", "GET")
        if "path_params" in wanted:
            args["path_params"] = dict(scope.get("path_params") or {})
        if "query_params" in wanted:
            args["query_params"] = QueryParams(scope.get("query_string") or b"")
        if "headers" in wanted:
            args["headers"] = headers
        if "authorization" in wanted:
            authorization = headers.get(b"authorization")
            args["authorization"] = authorization.decode("latin-1") if authorization is not None else None
        if "scope" in wanted:
            args["scope"] = scope
        try:
            result = await self._authenticate(**args)
        except Auth.exceptions.HTTPException as exc:
            raise refusal(exc.status_code, exc.detail, exc.headers) from None
        except HTTPException as exc:
            raise refusal(exc.status_code, exc.detail, exc.headers) from None
        try:
            return _caller(result)
        except ValueError as exc:
            raise InvalidFilter(f"the authenticate handler's result is not a user: {exc}") from None

    def _handler(self, resource: str, action: str) -> Any:
        """The most specific handler: resource and action, the resource's, the action's, any
        resource's and action's, then the global one (the last registered of each)."""
        key = (resource, action)
        if key not in self._cache:
            registered = self._auth._handlers
            found = None
            for candidate in (key, (resource, "*"), ("*", action), ("*", "*")):
                if candidate in registered and registered[candidate]:
                    found = registered[candidate][-1]
                    break
            else:
                if self._auth._global_handlers:
                    found = self._auth._global_handlers[-1]
            self._cache[key] = found
        return self._cache[key]

    async def authorize(self, resource: Resource, action: Action, value: dict[str, Any]) -> AccessFilter | None:
        """Runs the `@auth.on` handler of (resource, action) for the current caller: raises when
        it refuses; returns the filter storage must apply, None for none. The handler may
        change `value` (stamp metadata on what is created); the caller reads it back."""
        caller = current_caller()
        if caller is None:
            # Every path to here authenticates first; one that did not is refused, not served.
            raise Unauthenticated("the request was not authenticated")
        handler = self._handler(resource, action)
        if handler is None:
            return None
        ctx = Auth.types.AuthContext(
            user=cast(Any, caller.user), permissions=list(caller.permissions), resource=resource, action=action
        )
        try:
            result = await handler(ctx=ctx, value=value)
        except Auth.exceptions.HTTPException as exc:
            raise refusal(exc.status_code, exc.detail, exc.headers) from None
        except AssertionError as exc:
            raise PermissionDenied(str(exc) or "Forbidden") from None
        if result is None or result is True:
            return None
        if result is False:
            raise PermissionDenied("Forbidden")
        if not isinstance(result, Mapping):
            raise InvalidFilter(
                f"the {resource}.{action} auth handler returned a {type(result).__name__}: handlers return None, "
                "a boolean or a filter dict"
            )
        return parse_filter(result) if result else None
