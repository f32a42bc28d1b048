"""Who is calling: the user an `@auth.authenticate` handler returned, with the permissions it
granted, as the `@auth.on` handlers and the graphs see them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.authentication import BaseUser

_Json = dict[str, Any]


class AuthUser(BaseUser):
    """A user as the LangGraph Agent Server shows one to handlers and graphs: `identity`,
    `display_name` (the identity unless set), `is_authenticated` (true unless set), the
    user's own fields by attribute or by key, and `dict()`."""

    __slots__ = ("_user",)

    def __init__(self, user: Any) -> None:
        # A mapping with "identity", or an object with an `identity` attribute.
        self._user = user

    def _get(self, name: str, default: Any) -> Any:
        if isinstance(self._user, Mapping):
            return self._user.get(name, default)
        return getattr(self._user, name, default)

    @property
    def identity(self) -> str:
        return str(self._get("identity", ""))

    @property
    def is_authenticated(self) -> bool:
        return bool(self._get("is_authenticated", True))

    @property
    def display_name(self) -> str:
        return str(self._get("display_name", None) or self.identity)

    @property
    def permissions(self) -> list[str]:
        return list(self._get("permissions", None) or [])

    def dict(self) -> _Json:
        own: Any = {}
        if isinstance(self._user, Mapping):
            own = self._user
        elif callable(getattr(self._user, "model_dump", None)):
            own = self._user.model_dump(mode="json")
        elif callable(getattr(self._user, "dict", None)):
            own = self._user.dict()
        return {
            "identity": self.identity,
            "is_authenticated": self.is_authenticated,
            "display_name": self.display_name,
            **dict(own),
        }

    def to_json(self) -> _Json:
        """The user as JSON, for a run's record: what a graph sees, in any process."""
        json: _Json = orjson.loads(orjson.dumps(self.dict(), default=str))
        return json

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if isinstance(self._user, Mapping):
            if name in self._user:
                return self._user[name]
            raise AttributeError(f"the user has no attribute {name!r}")
        return getattr(self._user, name)

    def __getitem__(self, key: str) -> Any:
        return self.dict()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.dict()

    def __iter__(self) -> Iterator[str]:
        return iter(self.dict())

    def __len__(self) -> int:
        return len(self.dict())

    def get(self, key: str, default: Any = None) -> Any:
        return self.dict().get(key, default)

    def keys(self) -> Any:
        return self.dict().keys()

    def values(self) -> Any:
        return self.dict().values()

    def items(self) -> Any:
        return self.dict().items()

    def __repr__(self) -> str:
        return f"AuthUser({self.identity!r})"


def as_user(value: Any) -> AuthUser:
    """An authenticate handler's user: a string (the identity), a mapping with "identity", or
    an object with an `identity` attribute."""
    if isinstance(value, AuthUser):
        return value
    if isinstance(value, str):
        return AuthUser({"identity": value})
    if isinstance(value, Mapping) and "identity" in value:
        return AuthUser(dict(value))
    if not isinstance(value, Mapping) and hasattr(value, "identity"):
        return AuthUser(value)
    raise ValueError(
        "the authenticate handler must return a user: a string (its identity), a dict with 'identity', "
        f"or an object with an identity attribute; it returned a {type(value).__name__}"
    )


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of the request being served."""

    user: AuthUser
    permissions: tuple[str, ...]


_CALLER: ContextVar[Caller | None] = ContextVar("gateway_caller", default=None)


def current_caller() -> Caller | None:
    return _CALLER.get()


@contextmanager
def acting_as(caller: Caller) -> Iterator[None]:
    """Serves what runs inside as `caller`: both edges enter it once a request is authenticated."""
    token = _CALLER.set(caller)
    try:
        yield
    finally:
        _CALLER.reset(token)


# The keys of a run's `configurable` that say who created it, as on the Agent Server.
CONFIGURABLE_KEYS = ("langgraph_auth_user", "langgraph_auth_user_id", "langgraph_auth_permissions")


def put_caller(configurable: dict[str, Any], user: dict[str, Any] | None, permissions: list[str]) -> None:
    """Sets who created the run in its graph's configurable; values a request put there under
    these keys never reach the graph."""
    for key in CONFIGURABLE_KEYS:
        configurable.pop(key, None)
    if user is not None:
        configurable["langgraph_auth_user"] = AuthUser(user)
        configurable["langgraph_auth_user_id"] = str(user.get("identity", ""))
        configurable["langgraph_auth_permissions"] = list(permissions)
