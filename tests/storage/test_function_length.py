"""No function or method of gateway/storage runs past 60 lines: a longer one is two concerns."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway.storage

LIMIT = 60


def test_no_function_past_the_limit() -> None:
    root = Path(gateway.storage.__file__).parent
    long = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > LIMIT:
                    long.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long
