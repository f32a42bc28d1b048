"""The core's errors carry what the edges put in a status's details: the reason, the ids, the
bad fields."""

from __future__ import annotations

import pytest

from gateway.shared.errors import InvalidArgument, NotFound, ShuttingDown, ThreadBusy, TooManyRuns, Unavailable


@pytest.mark.parametrize(
    ("message", "fields"),
    [
        ("thread_id 'x' is not a UUID", ["thread_id"]),
        ("stream_mode[1]: unknown value 99", ["stream_mode[1]"]),
        ("command.resume must be set", ["command.resume"]),
        ("status: unknown value 7", ["status"]),
        ("the request cannot be parsed", []),
        ("give either skip_index or index_fields", []),
        ("Invalid assistant: 'x'", []),
    ],
)
def test_a_message_that_starts_with_a_field_names_it(message: str, fields: list[str]) -> None:
    assert [name for name, _ in InvalidArgument(message).violations] == fields


def test_an_explicit_field_or_list_wins_over_the_message() -> None:
    assert InvalidArgument("the input is too deep", field="input").violations == [("input", "the input is too deep")]
    many = [("a", "bad a"), ("b", "bad b")]
    assert InvalidArgument("a and b are bad", field="a", violations=many).violations == many


def test_not_found_names_its_kind_and_id() -> None:
    error = NotFound("Run r not found.", resource="run", id="r", metadata={"thread_id": "t"})
    assert error.reason == "RUN_NOT_FOUND" and error.metadata == {"run_id": "r", "thread_id": "t"}
    assert NotFound("gone").reason == "NOT_FOUND"


def test_reasons_and_retry_delays_by_class() -> None:
    assert ThreadBusy("busy").reason == "THREAD_BUSY"
    assert TooManyRuns("full").reason == "RUN_QUEUE_FULL" and TooManyRuns("full").retry_after
    assert isinstance(ShuttingDown("bye"), Unavailable) and ShuttingDown("bye").reason == "SHUTTING_DOWN"
