"""Property-based: random bodies, path ids, query strings and headers to every HTTP route get
a 2xx, or a 4xx with a {"detail"} message, never a 5xx or a hang, and the server keeps serving."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any, cast
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.http._backend import Backend
from gateway.http.app import build_app
from gateway.shared.records import STREAM_MODES
from tests._server import GatewayProcess
from tests.http._bridge import BridgeProcess

# Every route of the app, so that a new one is fuzzed without being listed here; deletes
# last, so that the threads the others are given mostly exist.
ROUTES = sorted(
    (
        (route.path, method)
        for route in build_app(cast(Backend, None), info={}).routes
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD"
    ),
    key=lambda r: (r[1] == "DELETE", r),
)
# Quick graphs only: a random input must not start a run that takes minutes.
GRAPHS = ["agent", "subgraphs", "chat", "custom", "approval", "failing", "secret", "nested"]
NODES = ["refine_topic", "generate_joke", "node_1", "node_2", "ask", "writer", "review", "nope"]
ASSISTANT_IDS = [str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), g)) for g in GRAPHS]
HANG = 20.0  # seconds a response may take before it counts as a hang
STREAM_WINDOW = 1.0  # seconds an event stream is read before the client leaves
# A thread's stream, between runs, has nothing to say but what it replays at once (after a
# Last-Event-ID): no example of its route starts a run, so the client leaves sooner.
SUBSCRIPTIONS = {("/threads/{thread_id}/stream", "GET"): 0.2}
# Reads are quick; writes start runs.
MAX_EXAMPLES = {"GET": 40, "DELETE": 40, "POST": 30, "PATCH": 30, "PUT": 30}

# What the server gave out, so that requests get past the lookups: thread ids, and
# (thread id or None, run id) of runs, from the Content-Location of responses.
THREADS: list[str] = []
RUNS: list[tuple[str | None, str]] = []
# Assistants the examples created: the only ones they may change or delete, so that the
# gateway the other tests share keeps its system assistants as they are.
ASSISTANTS: list[str] = []
_LOCATION = re.compile(r"^(?:/threads/([^/]+))?/runs/([^/]+)$")

texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
# Hypothesis favours small integers even in a wide range: the edges of 32 and 64 bits, explicitly.
edge_ints = st.sampled_from([2**31, 2**63 - 1, 2**63, 2**64, 2**70, -(2**63) - 1])
big_ints = edge_ints | st.integers(-(2**70), 2**70)
json_values = st.recursive(
    st.none() | st.booleans() | big_ints | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)
small_dicts = st.dictionaries(texts, json_values, max_size=3)
garbage_ids = (
    st.sampled_from(["", "-1", "0", "null", "not-a-uuid", "%ff%fe", "..", "a/b", "urn:uuid:" + "0" * 32])
    | st.builds(lambda: str(uuid.uuid4()))
    | st.text(max_size=40)
    | st.integers(100, 4000).map(lambda n: "x" * n)
)
event_ids = (
    st.sampled_from(["-1", "0", "-", "", "1-1", "abc", "1-*", "-0", "١٢٣-١"])
    | st.tuples(big_ints, big_ints).map(lambda t: f"{t[0]}-{t[1]}")
    | st.integers(0, 2**70).map(str)
    | st.text(max_size=30)
)


def _pick(draw: Any, found: list[Any]) -> Any:
    # By index, as the list grows while the test runs; drawn even when the list is empty, so
    # that every example draws the same kinds of values (and its callers draw theirs whatever
    # it gives: a draw that depends on the list's state makes a replay draw differently, which
    # hypothesis refuses as a flaky strategy).
    index = draw(st.integers(0, 10**6))
    return found[index % len(found)] if found else None


@st.composite
def thread_ids(draw: Any) -> str:
    # Two in three are ids the server gave out.
    known, garbage, choice = _pick(draw, THREADS), draw(garbage_ids), draw(st.integers(0, 2))
    return cast(str, known if known is not None and choice < 2 else garbage)


@st.composite
def run_ids(draw: Any) -> str:
    known, garbage, choice = _pick(draw, RUNS), draw(garbage_ids), draw(st.integers(0, 2))
    return cast(str, known[1] if known is not None and choice < 2 else garbage)


@st.composite
def path_params(draw: Any, names: list[str], *, changes_assistant: bool = False) -> dict[str, str]:
    ids: dict[str, str] = {}
    run = _pick(draw, RUNS) if draw(st.integers(0, 2)) < 2 else None
    for name in names:
        if name == "assistant_id" and changes_assistant:
            own, garbage, choice = _pick(draw, ASSISTANTS), draw(garbage_ids), draw(st.integers(0, 2))
            ids[name] = own if own is not None and choice < 2 else garbage
        elif name == "assistant_id":
            ids[name] = draw(st.sampled_from(GRAPHS + ASSISTANT_IDS) | garbage_ids)
        elif name == "thread_id":
            ids[name] = draw(thread_ids())
            if run is not None and run[0] is not None:
                ids[name] = run[0]
        elif name == "run_id":
            ids[name] = draw(garbage_ids)
            if run is not None:
                ids[name] = run[1]
        else:
            ids[name] = draw(garbage_ids)
    # Usually one path segment each; sometimes with their "/" and "%" as they are.
    safe = "" if draw(st.integers(0, 9)) else "/%"
    return {name: quote(value, safe=safe) for name, value in ids.items()}


VALID: dict[str, Any] = {
    "assistant_id": st.sampled_from(GRAPHS + ASSISTANT_IDS),
    "input": st.dictionaries(st.sampled_from(["topic", "foo", "query", "action", "messages"]), texts, max_size=2),
    "command": st.one_of(
        st.fixed_dictionaries({"resume": json_values}),
        st.fixed_dictionaries({"update": small_dicts}),
        st.fixed_dictionaries({"goto": st.sampled_from(NODES) | st.lists(st.sampled_from(NODES), max_size=2)}),
        # Fields a command does not have, alone or beside one it has.
        st.fixed_dictionaries({"bogus": json_values}, optional={"resume": json_values}),
    ),
    "config": st.fixed_dictionaries(
        {},
        optional={
            "recursion_limit": st.integers(-3, 50) | big_ints,
            "configurable": small_dicts,
            "tags": st.lists(texts, max_size=2),
            "metadata": small_dicts,
        },
    ),
    "context": small_dicts,
    "metadata": small_dicts,
    "stream_mode": st.sampled_from(STREAM_MODES) | st.lists(st.sampled_from(STREAM_MODES), max_size=4),
    "stream_subgraphs": st.booleans(),
    "stream_resumable": st.booleans(),
    "multitask_strategy": st.sampled_from(["reject", "interrupt", "rollback", "enqueue"]),
    "on_disconnect": st.sampled_from(["cancel", "continue"]),
    "if_not_exists": st.sampled_from(["create", "reject"]),
    "on_completion": st.sampled_from(["delete", "keep"]),
    "durability": st.sampled_from(["sync", "async", "exit"]),
    "checkpoint_during": st.booleans(),
    "interrupt_before": st.just("*") | st.lists(st.sampled_from(NODES), max_size=2),
    "interrupt_after": st.just("*") | st.lists(st.sampled_from(NODES), max_size=2),
    "checkpoint": st.fixed_dictionaries(
        {}, optional={"checkpoint_id": st.builds(lambda: str(uuid.uuid4())), "checkpoint_ns": texts}
    ),
    "checkpoint_id": st.builds(lambda: str(uuid.uuid4())) | garbage_ids,
    "after_seconds": st.integers(0, 1) | st.floats(0, 0.01) | big_ints | st.floats(),
    "webhook": texts,
    "feedback_keys": st.lists(texts, max_size=2),
    "langsmith_tracer": small_dicts,
    "limit": st.integers(-2, 1001) | big_ints,
    "offset": st.integers(-2, 20) | big_ints,
    "status": st.sampled_from(["pending", "running", "all", "idle", "busy", "interrupted", "error", "success"]),
    "ids": st.lists(thread_ids(), max_size=3),
    "thread_id": thread_ids(),
    "run_ids": st.lists(run_ids(), max_size=3),
    "values": small_dicts | st.lists(small_dicts, max_size=2),
    "sort_by": st.sampled_from(["thread_id", "status", "created_at", "updated_at", "state_updated_at"]),
    "sort_order": st.sampled_from(["asc", "desc"]),
    "if_exists": st.sampled_from(["raise", "do_nothing"]),
    "graph_id": st.sampled_from(GRAPHS),
    "name": st.sampled_from(GRAPHS) | texts,
    "before": st.builds(lambda: str(uuid.uuid4()))
    | st.builds(lambda: {"configurable": {"checkpoint_id": str(uuid.uuid4())}}),
    "as_node": st.sampled_from(NODES),
    "subgraphs": st.booleans(),
    "namespace": st.lists(st.sampled_from(["fuzz", "docs"]), min_size=1, max_size=2),
    "key": texts,
    "value": small_dicts,
    "ttl": st.sampled_from([1e13, 1e300, 10**9, 0.5, -1]) | st.floats(allow_nan=False) | big_ints,
}


@st.composite
def objects(draw: Any) -> dict[str, Any]:
    """A JSON object of the fields the routes know, mostly with valid values, some random."""
    body: dict[str, Any] = {}
    if draw(st.integers(0, 5)) < 5:
        body["assistant_id"] = draw(VALID["assistant_id"])
    for name in draw(st.lists(st.sampled_from(sorted(VALID)), max_size=6, unique=True)):
        body[name] = draw(VALID[name] if draw(st.integers(0, 3)) < 3 else json_values)
    if draw(st.integers(0, 4)) == 4:
        body[draw(texts)] = draw(json_values)
    # Fields some routes require together.
    run, choice = _pick(draw, RUNS), draw(st.integers(0, 3))
    if run is not None and run[0] is not None and choice == 3:
        body["thread_id"], body["run_ids"] = run[0], [run[1]]
    if draw(st.integers(0, 3)) == 3:
        body["checkpoint"] = draw(VALID["checkpoint"])
    return body


def _encode(value: Any) -> bytes:
    # The standard library's encoder: it writes integers of any size, and lone surrogates.
    return json.dumps(value).encode()


def _deep(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


class _Big(bytes):
    # Hypothesis prints failing examples: not megabytes of them.
    def __repr__(self) -> str:
        return f"<{len(self)} bytes: {bytes(self[:60])!r}...>"


# Bytes that are not UTF-8, a UTF-8-encoded surrogate, and an escaped one.
_NOT_UTF8 = [b'{"assistant_id": "\xff\xfe"}', b"\xff\xfe\xfd", b'{"a": "\xed\xa0\x80"}', b'{"a":"\\ud800"}']
# From about the deepest a field may nest (32 levels) to past what orjson parses.
deep = st.tuples(
    st.integers(30, 40) | st.integers(90, 300) | st.integers(300, 3000), st.sampled_from(["array", "object"])
)


@st.composite
def bodies(draw: Any) -> bytes | None:
    """Mostly JSON objects of known fields; then any JSON, deep nesting, megabytes, not UTF-8,
    not JSON, and nothing."""
    kind = draw(st.integers(0, 19))
    if kind < 12:
        return _encode(draw(objects()))
    if kind == 12:
        return _encode(draw(json_values))
    if kind == 13:
        return _Big(_deep(*draw(deep)))
    if kind == 14:
        field = draw(st.sampled_from(["input", "config", "metadata", "command", "values"]))
        return _Big(b'{"assistant_id":"agent","' + field.encode() + b'":' + _deep(*draw(deep)) + b"}")
    if kind == 15:
        return _Big(_encode({"assistant_id": "agent", "input": {"topic": "x" * draw(st.integers(10**5, 3 * 10**6))}}))
    if kind == 16:
        return cast(bytes, draw(st.sampled_from(_NOT_UTF8)))
    if kind == 17:
        return cast(bytes, draw(st.binary(max_size=200)))
    if kind == 18:
        return cast(str, draw(st.text(max_size=100))).encode("utf-8", "surrogatepass")
    return cast(bytes | None, draw(st.sampled_from([None, b"", b" ", b"null", b"{}"])))


flags = st.sampled_from(["true", "false", "True", "1", "0", "yes", ""]) | st.text(max_size=5)
numbers = st.integers(-1, 2000).map(str) | edge_ints.map(str)
modes = st.sampled_from([*STREAM_MODES, "run_modes", "lifecycle", "state_update", "lifecycle,state_update", "[]"])
QUERY = {
    "stream_mode": modes | st.lists(modes, max_size=3).map(json.dumps) | st.text(max_size=10),
    "stream_modes": modes | st.text(max_size=10),
    "limit": numbers,
    "offset": numbers,
    "status": st.sampled_from(["pending", "running", "success", "error", "timeout", "interrupted", "x"]),
    "action": st.sampled_from(["interrupt", "rollback", "x"]),
    "wait": flags,
    "cancel_on_disconnect": flags,
    "xray": flags | numbers,
    "subgraphs": flags,
    "before": st.builds(lambda: str(uuid.uuid4())) | st.text(max_size=10),
}
# Each known parameter half the time, then random ones, repeated names and all.
queries = st.tuples(
    st.fixed_dictionaries({}, optional=QUERY),
    st.lists(st.tuples(st.sampled_from(sorted(QUERY)) | st.text(max_size=8), st.text(max_size=20)), max_size=3),
).map(lambda t: [*t[0].items(), *t[1]])


def _header(raw: bytes) -> bytes:
    # What h11 lets a client send in a header value: visible ASCII, inner spaces and obs-text.
    return bytes(c for c in raw if 0x20 <= c <= 0x7E or c >= 0x80).strip() or b"x"


header_values = st.binary(max_size=40) | event_ids.map(str.encode)
headers = st.fixed_dictionaries(
    {},
    optional={
        "last-event-id": event_ids.map(str.encode) | header_values,
        "content-type": st.sampled_from(
            [b"application/json", b"text/plain", b"multipart/form-data; boundary=x", b"application/json; charset=x"]
        )
        | header_values,
        "x-api-key": header_values,
        "accept": st.sampled_from([b"text/event-stream", b"application/json", b"*/*"]) | header_values,
        "prefer": st.sampled_from([b"return=minimal", b"return=representation"]) | header_values,
        "origin": st.just(b"http://example.com"),
    },
).map(lambda h: {k: _header(v) for k, v in h.items()})


def _check_error_payload(payload: Any, where: str) -> None:
    # A graph's own exception is its run's outcome; InternalError is the server failing.
    if isinstance(payload, dict) and "__error__" in payload:
        payload = payload["__error__"]
    if isinstance(payload, dict) and "error" in payload:
        assert payload["error"] != "InternalError", f"{where}: {payload}"


def _forget_assistants(url: str) -> None:
    """Deletes the assistants the examples made (every one but the system's): the gateway is
    shared, and other tests count the assistants of a graph."""
    with httpx.Client(base_url=url, timeout=HANG) as http:
        found = http.post("/assistants/search", json={"limit": 1000})
        if found.status_code != 200:
            return
        for assistant in found.json():
            if assistant.get("metadata", {}).get("created_by") != "system":
                http.delete(f"/assistants/{assistant['assistant_id']}")


def _remember(response: httpx.Response, body: Any) -> None:
    # Threads, not runs, whose thread may be a stateless run's, gone when it ends.
    if isinstance(body, dict) and isinstance(body.get("thread_id"), str) and "run_id" not in body:
        if len(THREADS) < 100:
            THREADS.append(body["thread_id"])
    if (
        isinstance(body, dict)
        and isinstance(body.get("assistant_id"), str)
        and "version" in body
        and body.get("metadata", {}).get("created_by") != "system"
        and len(ASSISTANTS) < 100
    ):
        ASSISTANTS.append(body["assistant_id"])
    match = _LOCATION.match(response.headers.get("content-location", ""))
    if match and len(RUNS) < 100:
        RUNS.append((match[1], match[2]))


async def _send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    params: Any,
    head: dict[str, bytes],
    body: bytes | None,
    *,
    unsupported: bool,
    window: float = STREAM_WINDOW,
) -> None:
    """`unsupported`: the bridge, which answers 501 on the routes the gRPC API has no method for;
    `window`: seconds an event stream is read."""
    where = f"{method} {url}"
    try:
        async with asyncio.timeout(HANG):
            async with client.stream(method, url, params=params, headers=head, content=body) as response:
                where = f"{method} {response.url}"
                status = response.status_code
                assert status < 500 or (unsupported and status == 501), (
                    f"{where} -> {status}: {(await response.aread())[:500]!r}"
                )
                kind = response.headers.get("content-type", "")
                if status >= 400:
                    detail = orjson.loads(await response.aread())["detail"]
                    assert isinstance(detail, str) and detail, f"{where} -> {status}: {detail!r}"
                elif kind.startswith("text/event-stream"):
                    _remember(response, None)
                    await _read_events(response, where, window)
                else:
                    raw = await response.aread()
                    if kind.startswith("application/json") and raw.strip():
                        _check_error_payload(orjson.loads(raw), where)
                        _remember(response, orjson.loads(raw))
    except TimeoutError:
        raise AssertionError(f"{where}: no complete answer within {HANG} s") from None


async def _read_events(response: httpx.Response, where: str, window: float) -> None:
    """A few events, then the client leaves, as a client that lost interest does."""
    buffer = b""
    seen = 0
    try:
        async with asyncio.timeout(window):
            async for chunk in response.aiter_raw():
                buffer += chunk
                *blocks, buffer = buffer.split(b"\r\n\r\n")
                for block in blocks:
                    fields = dict(line.split(b": ", 1) for line in block.split(b"\r\n") if b": " in line)
                    if fields.get(b"event") == b"error":
                        _check_error_payload(orjson.loads(fields[b"data"]), where)
                    seen += 1
                if seen >= 3:
                    return
    except TimeoutError:
        pass  # an open stream with nothing to say, as a thread stream between runs


@pytest.fixture(scope="module")
def runner(gateway: GatewayProcess) -> Iterator[asyncio.Runner]:
    """Runs each example's requests; gives the examples a thread and a finished run to find."""
    with asyncio.Runner() as runner, httpx.Client(base_url=gateway.http_url, timeout=HANG) as http:
        thread_id = http.post("/threads", json={}).json()["thread_id"]
        THREADS.append(thread_id)
        done = http.post(
            f"/threads/{thread_id}/runs/wait",
            json={"assistant_id": "agent", "input": {"topic": "x"}, "stream_resumable": True},
        )
        RUNS.append((thread_id, done.headers["content-location"].rsplit("/", 1)[1]))
        yield runner


_LOGGED_ERROR = re.compile(r" (ERROR|CRITICAL) ")


@pytest.mark.parametrize("target", ["gateway", "bridge"])
@pytest.mark.parametrize(("path", "method"), ROUTES, ids=[f"{m} {p}" for p, m in ROUTES])
def test_random_requests(
    request: pytest.FixtureRequest, runner: asyncio.Runner, target: str, path: str, method: str
) -> None:
    server: GatewayProcess | BridgeProcess = request.getfixturevalue(target)
    names = re.findall(r"{(\w+)}", path)
    logged = len(server.stderr_lines)
    client = httpx.AsyncClient(base_url=server.http_url, timeout=HANG)
    # Routes that read no body often get none.
    body_strategy = bodies() if method in ("POST", "PATCH", "PUT") else st.none() | bodies()
    # The bridge is the same routes over another backend: fewer examples find its own bugs.
    examples = MAX_EXAMPLES[method] if target == "gateway" else 10
    # Only the assistants the examples made are changed or deleted (a PATCH, a DELETE, a version
    # made latest): the system assistants are every other test's.
    changes_assistant = path.startswith("/assistants/{assistant_id}") and (
        method in ("PATCH", "DELETE") or path.endswith("/latest")
    )

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(path_params(names, changes_assistant=changes_assistant), queries, headers, body_strategy)
    def check(ids: dict[str, str], params: Any, head: dict[str, bytes], body: bytes | None) -> None:
        url = path
        for name, value in ids.items():
            url = url.replace("{" + name + "}", value)
        window = SUBSCRIPTIONS.get((path, method), STREAM_WINDOW)
        runner.run(_send(client, method, url, params, head, body, unsupported=target == "bridge", window=window))

    try:
        check()
        ok = httpx.get(f"{server.http_url}/ok", timeout=5)
        assert ok.status_code == 200 and ok.json() == {"ok": True}
    finally:
        runner.run(client.aclose())
        _forget_assistants(server.http_url)
    assert server.proc is not None and server.proc.poll() is None, f"the {target} died"
    # Failures the client cannot see (a run's bookkeeping, a task nobody awaited) are logged.
    errors = [line for line in server.stderr_lines[logged:] if _LOGGED_ERROR.search(line)]
    assert not errors, "".join(server.stderr_lines[logged:])[-5000:]
