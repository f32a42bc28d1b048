"""Schemathesis hooks of tests/http/test_openapi.py's run (loaded by path: SCHEMATHESIS_HOOKS).

Each failure dropped here is a known difference, named and bounded to the requests that show
it, so that anything else still fails the run."""

from __future__ import annotations

from typing import Any

import schemathesis


def _echoes_negative_command_id(case: Any, response: Any) -> bool:
    # A command whose `id` is negative (the document says `minimum: 0`) is answered 200 with an
    # `unknown_command` or `invalid_argument` error that echoes the id, which the error's schema
    # does not allow; the validation of commands is being reworked on its own.
    if case.operation.path != "/threads/{thread_id}/commands" or response.status_code != 200:
        return False
    body = case.body
    return isinstance(body, dict) and isinstance(body.get("id"), int) and body["id"] < 0


def _refuses_a_filter_key_as_a_conflict(case: Any, response: Any) -> bool:
    # A history `metadata` filter with a key the sqlite checkpointer refuses ('' or 'a b') is
    # answered 409 "does not fit graph" rather than 422 naming the field: the checkpointer's
    # ValueError is read as a state that does not fit. Filters' limits are being reworked on
    # their own.
    return (
        case.operation.path == "/threads/{thread_id}/history"
        and response.status_code == 409
        and "Invalid filter key" in response.text
    )


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    return not (_echoes_negative_command_id(case, response) or _refuses_a_filter_key_as_a_conflict(case, response))
