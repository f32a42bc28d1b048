"""The in-process backend's declared core calls (gateway.http._calls): arguments passed by the
backend interface's parameter names, and a name the core method does not match refused as the
class is made."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.core.threads import Threads
from gateway.http._calls import Calling, CoreCall, each, local
from gateway.http._local import LocalBackend


class Interface:
    async def get_note(self, note_id: str, colour: str | None = None) -> dict[str, Any]: ...

    async def find_notes(self, **filters: Any) -> list[str]: ...


class Notes:
    async def get(self, note_id: str, *, colour: str | None) -> tuple[str, str | None]:
        return note_id, colour

    async def find(self, *, text: str = "", limit: int = 10) -> list[dict[str, Any]]:
        return [{"text": text, "n": n} for n in range(limit)]


def _type_error(raised: pytest.ExceptionInfo[BaseException]) -> TypeError:
    # Python 3.11 wraps an error of __set_name__ in a RuntimeError.
    error: BaseException | None = raised.value
    while error is not None and not isinstance(error, TypeError):
        error = error.__cause__
    assert error is not None
    return error


async def test_arguments_go_by_the_interfaces_names_and_the_reply_through_its_converter() -> None:
    class Backend(Calling):
        get_note = local(Notes.get, lambda pair: {"id": pair[0], "colour": pair[1]}, interface=Interface)
        find_notes = local(Notes.find, each(lambda note: note["text"] * note["n"]), interface=Interface)

        def __init__(self) -> None:
            self.services = (Notes(),)

    backend = Backend()
    # A positional argument reaches a keyword-only parameter; the interface's default is passed.
    assert await backend.get_note("n1") == {"id": "n1", "colour": None}
    assert await backend.get_note("n1", colour="red") == {"id": "n1", "colour": "red"}
    assert await backend.find_notes(text="ab", limit=3) == ["", "ab", "abab"]


def test_a_parameter_the_core_method_does_not_take_fails_as_the_class_is_made() -> None:
    class Misnamed:
        async def get(self, note: str, *, colour: str | None) -> None: ...

    with pytest.raises(Exception) as raised:

        class Backend(Calling):
            get_note = local(Misnamed.get, interface=Interface)

    message = str(_type_error(raised))
    assert "Backend.get_note" in message and "Misnamed.get" in message and "'note_id'" in message


def test_a_parameter_the_core_method_requires_and_the_interface_does_not_give_fails() -> None:
    class Stricter:
        async def get(self, note_id: str, colour: str | None, size: int) -> None: ...

    with pytest.raises(Exception) as raised:

        class Backend(Calling):
            get_note = local(Stricter.get, interface=Interface)

    message = str(_type_error(raised))
    assert "Backend.get_note" in message and "'size'" in message


def test_a_method_the_interface_does_not_have_fails() -> None:
    with pytest.raises(Exception) as raised:

        class Backend(Calling):
            get_notes = local(Notes.get, interface=Interface)

    assert "get_notes" in str(_type_error(raised))


def test_the_local_backend_declares_its_core_calls() -> None:
    declared = LocalBackend.get_thread
    assert isinstance(declared, CoreCall) and declared.function is Threads.get
    # The route's names, checked against the core's: `patch_thread(thread_id, metadata)` passes
    # `metadata` by name to the keyword-only parameter of Threads.patch.
    assert LocalBackend.patch_thread.arguments(("t1", {"a": 1}), {}) == {"thread_id": "t1", "metadata": {"a": 1}}
