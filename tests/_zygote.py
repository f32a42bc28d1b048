"""A fork server for the gateways the tests start: `python -m gateway serve|bridge ...`, forked
from a process that has already imported what the gateway imports, instead of a new interpreter
that imports it all again (about 1.5 s of CPU per start, some 130 starts in the suite).

The child is a real process of its own that runs the same `python -m gateway` entry point with
the test's arguments, working directory, environment and pipes; the test holds a Popen-like
handle on it (pid, poll, wait, send_signal, kill, stdout, stderr, returncode). The gateway's own
supervisor (`--workers`) forks its workers the same way, after its imports and before anything
of gRPC exists.

There is one fork server per command (`serve`, `bridge`), each with no more imported than a
real process of that command has once it serves (the metrics a process registers are those of
the modules it imports: a bridge must not show the core's); tests/test_zygote.py checks it.
What the import-time state could change is not forked but started as before (a new
interpreter): an environment that differs from the server's in anything but pytest's own
variables, `--workers` above 1 (prometheus-client reads its multiprocess directory when it is
imported), and any other command. `GATEWAY_TEST_FORK=0` turns it off.

No maintained library does this for a test suite (pytest-xprocess and the like start
processes, they do not fork them from a warm one); it is written here.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
_HEADER = struct.Struct("!I")
_VOLATILE = ("PYTEST_",)  # set by pytest per test; never read at import


def _stable(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith(_VOLATILE)}


# The test side


class Forked:
    """A child of the fork server, as much of subprocess.Popen as the tests use (GatewayProcess,
    BridgeProcess)."""

    def __init__(self, args: Sequence[str], conn: socket.socket, pid: int, stdout: IO[str], stderr: IO[str]) -> None:
        self.args = list(args)
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None
        self._conn = conn
        self._lock = threading.Lock()

    def _collect(self, timeout: float | None) -> int | None:
        with self._lock:
            if self.returncode is not None:
                return self.returncode
            readable, _, _ = select.select([self._conn], [], [], timeout)
            if not readable:
                return None
            data = self._conn.recv(64)
            # The server sends the exit code, then closes; a server gone says nothing.
            self.returncode = int(data) if data.strip() else _gone(self.pid)
            self._conn.close()
            return self.returncode

    def poll(self) -> int | None:
        return self._collect(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._collect(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _gone(pid: int) -> int:
    # The fork server died before its child: wait for the child to be gone, code unknown.
    while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
        select.select([], [], [], 0.05)
    return -signal.SIGKILL


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


class _Server:
    """This test process's fork server of one command, started on first use and stopped with
    the process."""

    def __init__(self, command: str) -> None:
        self.path = os.path.join(tempfile.mkdtemp(prefix="gw-zygote-"), "sock")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests._zygote", command, self.path], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        self.env = _stable(dict(os.environ))
        self.ok = line == "ready"
        atexit.register(self.stop)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def spawn(self, args: Sequence[str], cwd: Path, env: dict[str, str]) -> Forked:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.path)
            request = json.dumps({"argv": list(args[3:]), "cwd": str(cwd), "env": env}).encode()
            socket.send_fds(conn, [_HEADER.pack(len(request)) + request], [null, out_w, err_w])
            pid = int(_read_line(conn))
        except BaseException:
            conn.close()
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            for fd in (null, out_w, err_w):
                os.close(fd)
        return Forked(args, conn, pid, open(out_r, encoding="utf-8"), open(err_r, encoding="utf-8"))


_SERVERS: dict[str, _Server] = {}
_SERVERS_LOCK = threading.Lock()


def _forkable(args: Sequence[str]) -> bool:
    if os.environ.get("GATEWAY_TEST_FORK", "1") == "0":
        return False
    if list(args[:3]) != [sys.executable, "-m", "gateway"] or len(args) < 4 or args[3] not in ("serve", "bridge"):
        return False
    if "--workers" in args and args[args.index("--workers") + 1 :][:1] != ["1"]:
        return False
    return True


def popen(args: Sequence[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> Any:
    """`subprocess.Popen(args, cwd=cwd, env=env, stdout=PIPE, stderr=PIPE, text=True)`, forked
    from the fork server where that starts the same process."""
    env = dict(os.environ) if env is None else env
    if _forkable(args):
        with _SERVERS_LOCK:
            server = _SERVERS.get(args[3])
            if server is None:
                server = _SERVERS[args[3]] = _Server(args[3])
        if server.ok and _stable(env) == server.env:
            return server.spawn(args, cwd, env)
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(64)
        if not chunk:
            raise ConnectionError("the fork server closed the connection")
        data += chunk
    return data


# The server side


# What each command has imported once it serves (gateway.cli's `serve` and `run_bridge`, the
# test graphs' models), and nothing more.
PRELOAD = {
    "serve": (
        "sqlite3",
        "uvloop",
        "langgraph.graph",
        "langchain_core.language_models.fake_chat_models",
        "langchain_core.output_parsers.openai_tools",
        "uvicorn.lifespan.on",
        "uvicorn.protocols.websockets.websockets_sansio_impl",
        "gateway.cli",
        "gateway.config.file",
        "gateway.core.gateway",
        "gateway.http._local",
        "gateway.http.app",
        "gateway.http.server",
        "gateway.process.logs",
        "gateway.process.tracing",
        "gateway.rpc.auth",
        "gateway.rpc.server",
    ),
    "bridge": (
        "uvloop",
        "uvicorn.lifespan.on",
        "gateway.cli",
        "gateway.bridge.app",
        "gateway.config.http",
        "gateway.config.loader",
        "gateway.http.app",
        "gateway.http.server",
        "gateway.process.logs",
        "gateway.process.tracing",
    ),
}


def _preload(command: str) -> None:
    for module in PRELOAD[command]:
        importlib.import_module(module)


def _child(inherited: list[Any], request: dict[str, Any], fds: list[int]) -> None:
    code = 1
    try:
        # The server's socket, this request's and its siblings' connections and pidfds.
        for held in inherited:
            if isinstance(held, int):
                os.close(held)
            else:
                held.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.argv = [str(Path(request["cwd"]) / "gateway" / "__main__.py"), *request["argv"]]
        from gateway.cli import main

        main(request["argv"])
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        # What the interpreter does on its way out: threads joined, atexit handlers, buffers.
        with contextlib.suppress(BaseException):
            threading._shutdown()  # type: ignore[attr-defined]
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(code)


def serve(command: str, path: str) -> None:
    _preload(command)
    if threading.active_count() != 1:
        print("threads started on import: not forking", flush=True)
        return
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, connection)
    while True:
        readable, _, _ = select.select([listener, *children], [], [])
        for ready in readable:
            if ready is listener:
                conn, _ = listener.accept()
                raw, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
                (size,) = _HEADER.unpack_from(raw)
                while len(raw) < _HEADER.size + size:
                    raw += conn.recv(1 << 20)
                request = json.loads(raw[_HEADER.size :])
                pid = os.fork()
                if pid == 0:
                    siblings = [item for pidfd, (_, other) in children.items() for item in (pidfd, other)]
                    _child([listener, conn, *siblings], request, fds)
                for fd in fds:
                    os.close(fd)
                conn.sendall(f"{pid}\n".encode())
                children[os.pidfd_open(pid)] = (pid, conn)
            else:
                pid, conn = children.pop(ready)
                os.close(ready)
                _, status = os.waitpid(pid, 0)
                with contextlib.suppress(OSError):
                    conn.sendall(str(os.waitstatus_to_exitcode(status)).encode())
                conn.close()


if __name__ == "__main__":
    if sys.argv[1] == "--modules":
        # What the fork server of a command has imported (tests/test_zygote.py).
        _preload(sys.argv[2])
        print(json.dumps(sorted(sys.modules)))
    else:
        serve(sys.argv[1], sys.argv[2])
