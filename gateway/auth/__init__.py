"""Custom auth from langgraph.json (`auth.path`), as the LangGraph Agent Server runs it: the edges
authenticate each request and serve it as its caller (`acting_as`); the core asks the
`@auth.on` handlers before each action and hands their filters to storage."""

from __future__ import annotations

from gateway.auth.filters import InvalidFilter, parse_filter
from gateway.auth.handlers import AuthHandlers, refusal
from gateway.auth.user import AuthUser, Caller, acting_as, as_user, current_caller, put_caller

__all__ = [
    "AuthHandlers",
    "AuthUser",
    "Caller",
    "InvalidFilter",
    "acting_as",
    "as_user",
    "current_caller",
    "parse_filter",
    "put_caller",
    "refusal",
]
