"""py-spy against the gateway process while a scenario runs, and a summary of where its time
went: which threads were busy, and on the event loop's thread, which layer the CPU was in,
the gateway code each sample was spent under, and the hottest gateway functions."""

from __future__ import annotations

import asyncio
import inspect
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

_SQLITE = re.compile(r"sqlite3[A-Z_]|libsqlite|_sqlite3\.|pysqlite")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
# Where the CPU was, by the file of the innermost frame; the first match wins.
_LAYERS = (
    ("gateway/", "gateway"),
    ("langgraph/", "langgraph / langchain (running the graph)"),
    ("langchain_core/", "langgraph / langchain (running the graph)"),
    ("grpc/", "grpc"),
    ("google/protobuf", "protobuf"),
    ("uvicorn/", "uvicorn / starlette / h11"),
    ("starlette/", "uvicorn / starlette / h11"),
    ("h11/", "uvicorn / starlette / h11"),
    ("anyio/", "uvicorn / starlette / h11"),
    ("aiosqlite/", "aiosqlite (loop side)"),
    ("asyncio/", "asyncio event loop"),
    ("selectors.py", "asyncio event loop"),
    ("graphs.py", "the bench graph's own code"),
)


def py_spy() -> str | None:
    exe = Path(sys.executable).parent / "py-spy"
    return str(exe) if exe.exists() else shutil.which("py-spy")


async def record(
    pid: int, out: Path, work: Callable[[], Awaitable[Any]], *, rate: int = 200, native: bool = False
) -> Any:
    """Samples every busy thread of `pid` into `out` (collapsed stacks) while `work` runs;
    `native` adds the frames of C and Cython code (grpc's core is Cython)."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    cmd = [exe, "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate), "--full-filenames", "-o", str(out)]
    if native:
        cmd.append("--native")
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    await asyncio.sleep(1.0)  # attached
    try:
        return await work()
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = await proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"py-spy failed: {stderr.decode(errors='replace').strip()[-500:]}")


def _frame(raw: str) -> tuple[str, str, int | None]:
    m = _FRAME.match(raw)
    if m is None:
        return raw, "", None
    return m["func"], m["file"], int(m["line"]) if m["line"] else None


def _short(file: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def _ours(file: str) -> bool:
    # The entry point is under every stack of the event loop: it says nothing about where time goes.
    if file.endswith(("gateway/cli.py", "gateway/__main__.py")):
        return False
    return "gateway/" in file and "site-packages" not in file and "generated/" not in file


def _layer(file: str) -> str:
    if _ours(file):
        return "gateway"
    for marker, layer in _LAYERS[1:]:
        if marker in file:
            return layer
    return "other Python"


def _queue_wait_line() -> int | None:
    # py-spy counts aiosqlite's workers as busy while they block on their queue; that line is idle.
    try:
        import aiosqlite.core

        lines, start = inspect.getsourcelines(aiosqlite.core._connection_worker_thread)
    except (ImportError, AttributeError, OSError):
        return None
    return next((start + i for i, line in enumerate(lines) if "tx.get()" in line), None)


def _thread(stack: str, frames: list[tuple[str, str, int | None]], idle_line: int | None) -> str:
    # asyncio's loop shows its run_forever; uvloop's is native, under asyncio.Runner.run.
    if "run_forever" in stack or "Runner.run (" in stack:
        return "event loop"
    if "_connection_worker_thread" in stack:
        below = stack.split("_connection_worker_thread", 1)[1]
        func, file, line = frames[-1]
        # Working: sqlite's own frames (--native), or the line that runs the call.
        if _SQLITE.search(below) or (func == "_connection_worker_thread" and line != idle_line):
            return "aiosqlite workers running SQL (GIL released)"
        return "idle (aiosqlite workers waiting for work)"
    if "Thread.run" in stack and not any(_ours(f) or "site-packages" in f for _, f, _ in frames[3:]):
        return "grpc's own threads (poller, writer; native)"
    return "other threads"


def summarise(path: Path, top: int = 15) -> dict[str, Any]:
    threads: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    blame: Counter[str] = Counter()
    loop = 0
    idle_line = _queue_wait_line()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";")]
        thread = _thread(stack, frames, idle_line)
        threads[thread] += n
        if thread != "event loop":
            continue
        loop += n
        func, file, _ = frames[-1]
        layers[_layer(file)] += n
        ours = [f"{fn} ({_short(fl)})" for fn, fl, _ in frames if _ours(fl)]
        for name in set(ours):
            inclusive[name] += n
        where = ours[-1] if ours else "(no gateway frame)"
        blame[f"{where} → {func} ({_short(file)})"] += n

    def shares(counter: Counter[str], total: int, limit: int = top) -> list[tuple[str, float]]:
        return [(k, v / total) for k, v in counter.most_common(limit)] if total else []

    samples = sum(threads.values())
    return {
        "samples": samples,
        "threads": shares(threads, samples),
        "loop_samples": loop,
        "loop_layers": shares(layers, loop),
        "loop_gateway_inclusive": shares(inclusive, loop),
        "loop_gateway_to_leaf": shares(blame, loop),
    }


def format_summary(title: str, summary: dict[str, Any]) -> str:
    lines = [f"### {title}: {summary['samples']} samples, {summary['loop_samples']} on the event loop"]
    for key, heading in (
        ("threads", "threads py-spy saw busy (share of all samples)"),
        ("loop_layers", "event loop: where the CPU was, by layer"),
        ("loop_gateway_inclusive", "event loop: time under each gateway function (inclusive)"),
        ("loop_gateway_to_leaf", "event loop: innermost gateway frame → function the CPU was in"),
    ):
        lines.append(f"\n{heading}:")
        lines += [f"  {share:6.1%}  {name}" for name, share in summary[key]]
    return "\n".join(lines)
