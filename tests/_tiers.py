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
from collections.abc import Iterable, Iterator
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


def _fixtures(item: pytest.Item, walker: Walker) -> list[tuple[Any, frozenset[str]]]:
    """The fixture definitions an item uses, with what each reaches: those it names and those
    its fixtures ask for by name (getfixturevalue)."""
    manager = item.session._fixturemanager
    found: list[tuple[Any, frozenset[str]]] = []
    pending = set(getattr(item, "fixturenames", ()))
    done: set[str] = set()
    while pending:
        name = pending.pop()
        done.add(name)
        # The definition that applies is the last (closest); it may ask for the one it overrides.
        for fixturedef in reversed(manager.getfixturedefs(name, item) or ()):
            names = walker.names(fixturedef.func)
            found.append((fixturedef, names))
            pending |= {n.removeprefix("fixture:") for n in names if n.startswith("fixture:")} - done
            if name not in fixturedef.argnames:
                break
    return found


def tier(item: pytest.Item, names: frozenset[str]) -> str:
    if Path(str(item.fspath)).resolve().is_relative_to(_SCALE_DIR):
        return "scale"
    if names & _REFERENCE_NAMES:
        return "reference"
    if names & _E2E_NAMES:
        return "e2e"
    if names & _EDGE_NAMES:
        return "edge"
    return "unit"


def xdist_group(item: pytest.Item, fixtures: list[tuple[Any, frozenset[str]]]) -> str | None:
    """The pytest-xdist group (`--dist loadgroup`) that keeps an item on the worker of what it
    shares: the tests of one reference server (a session fixture) together, and a module's tests
    together when they use a module-scoped fixture (a process it starts, or what the module's
    tests add to as they go, as the fuzzers' ids). Every other test goes to whichever worker is
    free; each worker has session fixtures (the shared gateways) of its own."""
    for fixturedef, names in fixtures:
        if fixturedef.scope == "session" and names & _REFERENCE_NAMES:
            return fixturedef.argname
    for fixturedef, _ in fixtures:
        if fixturedef.scope in ("package", "module", "class"):
            return item.nodeid.split("::")[0]
    return None


def mark(items: list[pytest.Item]) -> None:
    """Marks each item with its tier and, where it shares a process it must not start twice,
    its xdist_group."""
    walker = Walker()
    for item in items:
        function = getattr(item, "function", None)
        fixtures = _fixtures(item, walker)
        names = set(walker.names(function)) if function is not None else set()
        for _, reached in fixtures:
            names |= reached
        if not any(item.get_closest_marker(name) for name in TIERS):
            item.add_marker(tier(item, frozenset(names)))
        group = xdist_group(item, fixtures)
        if group is not None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(group))
