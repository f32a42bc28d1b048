"""The store, store auth and graph factories against the LangGraph Agent Server's own (`langgraph
dev` from .venv-ref), as the oracle: both serve tests/graphs/store/auth.json (store handlers that
scope each user's items to a namespace of their own, a semantic index, a factory of each form),
one script of Python SDK calls runs against each, and every step's answer must agree, ids and
times aside.

Where the two differ on purpose, the script leaves it out and says so here:
- a search without a query lists the most recently updated items first; the reference's
  in-memory dev store lists them in the order they were put (the Postgres-backed Agent Server,
  like ours, by update time): listings are compared as sets;
- a semantic search here returns only items that have vectors; the reference's dev store fills
  the page up with unindexed items (score null);
- our 4xx bodies are always {"detail": ...}; the reference answers some as plain text;
- a run given `config.configurable` and no `context`: the reference mirrors the configurable
  into the runtime's context, which the gateway does not (yet) do for any graph.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.errors import APIStatusError

from tests._langgraph_dev import langgraph_dev
from tests._normalise import Normaliser
from tests._server import GatewayProcess
from tests._store import indexed, write_config
from tests.conftest import BACKENDS, backend_args

NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
FACTORIES = ["plain_factory", "config_factory", "runtime_factory", "async_factory", "cm_factory", "acm_factory"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[bool], list[Any]]]:
    """The reference's transcript, with or without semantic search. Each is the same whichever
    backend ours is on (every run of the script has a root of its own), and the reference takes
    half a second or more per run: both are made once, in the background from the start, one
    after the other (two at once on the reference's in-memory store answered a put 400 now and
    then)."""
    folder = tmp_path_factory.mktemp("store-reference")
    with langgraph_dev(write_config(folder, auth=True), folder) as url, ThreadPoolExecutor(1) as pool:
        transcripts = {semantic: pool.submit(_transcript, url, semantic) for semantic in map(indexed, BACKENDS)}
        yield lambda semantic: transcripts[semantic].result()


@pytest.fixture(scope="module", params=BACKENDS)
def candidate(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, bool]]:
    """Ours on each backend, and whether its store has the semantic index."""
    folder = tmp_path_factory.mktemp("store-candidate")
    semantic = indexed(request.param)
    config = write_config(folder, auth=True, index=semantic)
    with backend_args(request.param) as args:
        proc = GatewayProcess(folder / "gateway.sqlite", config=config, extra_args=args).start()
        yield proc.http_url, semantic
        proc.kill()


class Script:
    """Runs steps against one server, writing down each answer (or its error status)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lines: list[tuple[str, Any]] = []
        self._clients: dict[str, Any] = {}

    def client(self, user: str | None) -> Any:
        if user not in self._clients:
            headers = {"authorization": f"Bearer {user}"} if user else {}
            self._clients[user] = get_sync_client(url=self.url, headers=headers)
        return self._clients[user]

    def step(self, name: str, call: Any, shape: Any = None) -> Any:
        try:
            answer = call()
        except APIStatusError as exc:
            self.lines.append((name, {"status": exc.status_code}))
            return None
        self.lines.append((name, shape(answer) if shape is not None else answer))
        return answer

    def raw(self, name: str, method: str, path: str, user: str | None, **kwargs: Any) -> None:
        headers = {"authorization": f"Bearer {user}"} if user else {}
        response = httpx.request(method, self.url + path, headers=headers, timeout=60, **kwargs)
        self.lines.append((name, {"status": response.status_code}))


def _listing(answer: dict[str, Any]) -> list[Any]:
    return sorted((item["namespace"], item["key"], item["value"], item["score"]) for item in answer["items"])


def _ranked(answer: dict[str, Any]) -> list[Any]:
    return [(item["key"], round(item["score"], 3)) for item in answer["items"]]


def _store_steps(s: Script, semantic: bool) -> None:
    # Every namespace under a root of this transcript's own: the reference keeps its store.
    r = str(uuid.uuid4())
    alice, bob = s.client("alice"), s.client("bob")
    s.step("alice puts", lambda: alice.store.put_item([r, "notes"], "k1", {"text": "cats chase mice", "public": True}))
    s.step("alice puts deeper", lambda: alice.store.put_item([r, "notes", "deep"], "k2", {"text": "dogs chase cats"}))
    s.step("alice puts with a ttl", lambda: alice.store.put_item([r, "notes"], "k3", {"text": "red cars"}, ttl=60))
    s.step("bob puts the same key", lambda: bob.store.put_item([r, "notes"], "k1", {"text": "bob's own"}))
    s.step("alice gets", lambda: alice.store.get_item([r, "notes"], "k1"))
    s.step("bob gets", lambda: bob.store.get_item([r, "notes"], "k1"))
    s.step("bob gets alice's by its full name", lambda: bob.store.get_item(["alice", r, "notes"], "k1"))
    s.step("alice lists", lambda: alice.store.search_items([r]), _listing)
    s.step("alice filters", lambda: alice.store.search_items([r, "notes"], filter={"public": True}), _listing)
    s.step("bob lists", lambda: bob.store.search_items([r]), _listing)
    s.step("alice's namespaces", lambda: alice.store.list_namespaces(prefix=[r]))
    s.step("cut to three labels", lambda: alice.store.list_namespaces(prefix=[r], max_depth=3))
    s.step("by suffix", lambda: alice.store.list_namespaces(prefix=[r], suffix=["deep"]))
    auditor = s.client("auditor")
    s.step("auditor puts public", lambda: auditor.store.put_item([r, "notes"], "p", {"public": True}))
    s.step("auditor puts private", lambda: auditor.store.put_item([r, "notes"], "q", {"public": False}))
    s.step("auditor's search sees public items", lambda: auditor.store.search_items([r]), _listing)
    if semantic:
        s.step(
            "alice searches by meaning",
            lambda: alice.store.search_items([r, "notes"], query="cats chase mice"),
            _ranked,
        )
    mallory = s.client("mallory")
    s.step("mallory puts", lambda: mallory.store.put_item([r, "notes"], "m", {}))
    s.step("mallory gets", lambda: mallory.store.get_item([r, "notes"], "k1"))
    s.step("mallory searches", lambda: mallory.store.search_items([r]))
    s.step("mallory lists", lambda: mallory.store.list_namespaces(prefix=[r]))
    s.step("mallory deletes", lambda: mallory.store.delete_item([r, "notes"], "k1"))
    s.raw("anonymous puts", "PUT", "/store/items", None, json={"namespace": ["n"], "key": "k", "value": {}})
    s.raw("anonymous searches", "POST", "/store/items/search", None, json={"namespace_prefix": []})
    s.step("alice deletes", lambda: alice.store.delete_item([r, "notes"], "k1"))
    s.step("alice gets what she deleted", lambda: alice.store.get_item([r, "notes"], "k1"))
    s.step("bob's is still there", lambda: bob.store.get_item([r, "notes"], "k1"))
    s.raw("a label with a period", "PUT", "/store/items", "alice", json={"namespace": ["a.b"], "key": "k", "value": {}})
    s.raw(
        "a value that is no object", "PUT", "/store/items", "alice", json={"namespace": ["a"], "key": "k", "value": 1}
    )
    s.raw("no key", "GET", "/store/items", "alice", params={"namespace": "a"})
    s.raw(
        "a limit that is no integer",
        "POST",
        "/store/items/search",
        "alice",
        json={"namespace_prefix": ["a"], "limit": "1"},
    )
    s.raw(
        "an unknown operator",
        "POST",
        "/store/items/search",
        "alice",
        json={"namespace_prefix": [r], "filter": {"n": {"$x": 1}}},
    )


def _factory(s: Script, alice: Any, graph_id: str) -> None:
    thread = alice.threads.create()
    assistant = str(uuid.uuid5(NAMESPACE, graph_id))
    s.step(f"{graph_id} runs", lambda: alice.runs.wait(thread["thread_id"], graph_id, input={"topic": "t"}))
    s.step(f"{graph_id} state", lambda: alice.threads.get_state(thread["thread_id"])["values"])
    s.step(f"{graph_id} schemas", lambda: alice.assistants.get_schemas(assistant))
    s.step(f"{graph_id} graph", lambda: alice.assistants.get_graph(assistant, xray=True))


def _factory_steps(s: Script) -> None:
    alice = s.client("alice")
    for graph_id in FACTORIES:
        _factory(s, alice, graph_id)
    s.step(
        "the runtime's context",
        lambda: alice.runs.wait(None, "runtime_factory", input={}, context={"flavor": "lemon"}),
    )
    s.step(
        "the run's configurable",
        lambda: alice.runs.wait(None, "config_factory", input={}, config={"configurable": {"flavor": "mint"}}),
    )
    thread = alice.threads.create()
    alice.runs.wait(thread["thread_id"], "cm_factory", input={"topic": "t"})
    run_id = alice.runs.list(thread["thread_id"])[0]["run_id"]
    s.step(
        "the context manager's entry and exit", lambda: alice.runs.wait(None, "factory_log", input={"run_id": run_id})
    )


def _transcript(url: str, semantic: bool) -> list[Any]:
    script = Script(url)
    _store_steps(script, semantic)
    _factory_steps(script)
    return Normaliser()(script.lines)  # type: ignore[no-any-return]


def test_the_script_gets_the_reference_s_answers(
    reference: Callable[[bool], list[Any]], candidate: tuple[str, bool]
) -> None:
    url, semantic = candidate
    theirs, ours = reference(semantic), _transcript(url, semantic)
    assert [line[0] for line in ours] == [line[0] for line in theirs]
    for mine, ref in zip(ours, theirs, strict=True):
        assert mine == ref, f"step {mine[0]!r}: ours {mine[1]!r}, reference {ref[1]!r}"
