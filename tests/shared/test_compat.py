"""Each private LangChain / LangGraph name the gateway uses is where gateway/shared/compat.py
takes it from: an upgrade that moves one fails here, naming it."""

from __future__ import annotations

import importlib

import pytest

from gateway.shared import compat


@pytest.mark.parametrize(("module", "name"), compat.PRIVATE, ids=[f"{m}.{n}" for m, n in compat.PRIVATE])
def test_the_private_name_is_where_the_gateway_takes_it(module: str, name: str) -> None:
    assert getattr(compat, name) is compat.private(module, name)


def test_a_moved_name_is_named() -> None:
    with pytest.raises(ImportError, match=r"langgraph\._internal\._constants\.NO_SUCH_NAME .*compat\.py"):
        compat.private("langgraph._internal._constants", "NO_SUCH_NAME")


def test_every_private_import_of_the_gateway_goes_through_compat() -> None:
    import pathlib
    import re

    root = pathlib.Path(importlib.import_module("gateway").__file__ or "").parent
    private = re.compile(
        r"^\s*from (langgraph|langchain_core)\S*\._\w+ import|^\s*from (langgraph|langchain_core|langgraph_sdk)\S* import .*\b_[A-Za-z]\w*",
        re.M,
    )
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "compat.py" and private.search(path.read_text())
    ]
    assert offenders == []
