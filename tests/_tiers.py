"""The suite's tiers, each test in exactly one, found from what its code (and its fixtures' code)
reaches rather than written on 2,000 tests by hand:

- `scale`: tests/scale, deployments of several gateway processes on shared backends;
- `reference`: diffs against the reference server (`langgraph dev`, from .venv-ref);
- `e2e`: real processes: a gateway or bridge, Node, grpcurl, buf, a venv, a shell;
- `edge`: an HTTP app or a gRPC server in the test's own process;
- `unit`: the rest, functions and the core in-process (on sqlite, Postgres or Redis).

`make test-fast` runs `unit or edge`. The walk follows every name a test function uses (nested
functions, lambdas and comprehensions included) to the module-level functions and classes of
tests/ that it names, and so on down; a test that starts a process through some other way than
those below lands in a faster tier than it should, which the tier's durations would show."""

from __future__ import annotations

import builtins
import inspect
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import CodeType, FunctionType, ModuleType
from typing import Any

import pytest

TIERS = ("unit", "edge", "e2e", "reference", "scale")

# Names whose use puts a test in a tier, by attribute or global name (`subprocess.run` and
# `from subprocess import run` both name `subprocess`, or `run` of it, found by identity below).
_REFERENCE_NAMES = frozenset({"langgraph_dev", "ensure_ref_venv"})
_E2E_NAMES = frozenset(
    {"GatewayProcess", "BridgeProcess", "own_gateway", "create_subprocess_exec", "create_subprocess_shell", "Popen"}
)
_EDGE_NAMES = frozenset({"ASGITransport", "TestClient", "build_app", "IoLoop", "WebSocketTestSession"})
_SCALE_DIR = Path(__file__).resolve().parent / "scale"


def _codes(code: CodeType) -> Iterator[CodeType]:
    """`code` and every code object nested in it."""
    yield code
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _codes(const)


def _functions_of(obj: Any) -> Iterable[FunctionType]:
    """The plain functions behind `obj`: itself, what it wraps, a class's methods."""
    seen: list[FunctionType] = []
    while obj is not None:
        if isinstance(obj, FunctionType):
            seen.append(obj)
        elif isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
            continue
        elif isinstance(obj, property):
            seen.extend(f for f in (obj.fget, obj.fset) if isinstance(f, FunctionType))
        elif inspect.isclass(obj):
            for value in vars(obj).values():
                seen.extend(_functions_of(value))
        obj = getattr(obj, "__wrapped__", None)
    return seen


def _is_ours(obj: Any) -> bool:
    return str(getattr(obj, "__module__", "") or "").startswith("tests")


class Walker:
    """Which trigger names a function reaches, memoised across the session's items."""

    def __init__(self) -> None:
        self._memo: dict[int, frozenset[str]] = {}

    def names(self, obj: Any) -> frozenset[str]:
        found: set[str] = set()
        for function in _functions_of(obj):
            found |= self._function(function)
        return frozenset(found)

    def _function(self, function: FunctionType) -> frozenset[str]:
        key = id(function)
        if key in self._memo:
            return self._memo[key]
        self._memo[key] = frozenset()  # recursion guard
        found: set[str] = set()
        scope = function.__globals__
        for code in _codes(function.__code__):
            for name in (*code.co_names, *code.co_freevars):
                found.add(name)
                value = scope.get(name, getattr(builtins, name, None))
                if isinstance(value, ModuleType) and value is subprocess:
                    found.add("Popen")
                elif getattr(value, "__module__", None) == "subprocess":
                    found.add("Popen")
                elif _is_ours(value) and value is not function:
                    found |= self.names(value)
            if "getfixturevalue" in code.co_names:
                # request.getfixturevalue("name"): the fixture names it may ask for.
                found.update(f"fixture:{c}" for c in code.co_consts if isinstance(c, str) and c.isidentifier())
        # Closures: the functions a fixture factory hands back name their free variables' values.
        for cell in function.__closure__ or ():
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if _is_ours(value) and isinstance(value, FunctionType):
                found |= self.names(value)
        result = frozenset(found)
        self._memo[key] = result
        return result


def _fixture_functions(item: pytest.Item, names: Iterable[str]) -> Iterator[Callable[..., Any]]:
    manager = item.session._fixturemanager
    for name in names:
        for fixturedef in manager.getfixturedefs(name, item) or ():
            yield fixturedef.func


def tier(item: pytest.Item, walker: Walker) -> str:
    if Path(str(item.fspath)).resolve().is_relative_to(_SCALE_DIR):
        return "scale"
    function = getattr(item, "function", None)
    names: set[str] = set(walker.names(function)) if function is not None else set()
    fixtures = set(getattr(item, "fixturenames", ()))
    done: set[str] = set()
    # Fixtures the test uses, and those its fixtures ask for by name (getfixturevalue).
    while pending := (fixtures | {n.removeprefix("fixture:") for n in names if n.startswith("fixture:")}) - done:
        for func in _fixture_functions(item, pending):
            names |= walker.names(func)
        done |= pending
    if names & _REFERENCE_NAMES:
        return "reference"
    if names & _E2E_NAMES:
        return "e2e"
    if names & _EDGE_NAMES:
        return "edge"
    return "unit"


def mark_tiers(items: list[pytest.Item]) -> None:
    walker = Walker()
    for item in items:
        if not any(item.get_closest_marker(name) for name in TIERS):
            item.add_marker(tier(item, walker))
