"""Our HTTP/SSE streams against the LangGraph Agent Server's own (`langgraph dev`), event by event,
with the project's differential runner (tests/conformance) on its cases: both servers serve the
test graphs (tests/graphs/langgraph.json), and every case must match."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from tests._server import ROOT, GatewayProcess
from tests.conformance import Line, Outcome, lines, load_cases, outcome, transcripts
from tests.conftest import BACKENDS, backend_args

CASES = load_cases()


@pytest.fixture(scope="module", params=BACKENDS)
def candidate(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Ours, on each backend."""
    with backend_args(request.param) as args:
        proc = GatewayProcess(tmp_path_factory.mktemp("candidate") / "gateway.sqlite", extra_args=args).start()
        yield proc.http_url
        proc.kill()


@pytest.fixture(scope="module")
def reference_transcripts(reference: str) -> Iterator[Future[list[list[Line] | str]]]:
    """Every case on the reference, once for both candidates, begun at once in the background
    (while the first candidate starts): it takes about a second per run, `JOBS` cases at a time,
    each on a thread of its own."""
    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(asyncio.run, transcripts(reference, CASES))


@pytest.fixture(scope="module")
def outcomes(reference_transcripts: Future[list[list[Line] | str]], candidate: str) -> dict[str, Outcome]:
    """Every case on the candidate, each against the reference's transcript."""
    ours = asyncio.run(transcripts(candidate, CASES))
    theirs = reference_transcripts.result()
    return {case.name: outcome(case, ref, cand) for case, ref, cand in zip(CASES, theirs, ours, strict=True)}


@pytest.mark.parametrize("name", [case.name for case in CASES])
def test_case_matches_the_reference(outcomes: dict[str, Outcome], name: str) -> None:
    outcome = outcomes[name]
    assert outcome.matched, outcome.report(verbose=True)


def test_the_command_line_runner(reference: str, candidate: str) -> None:
    # What a contributor runs by hand against servers of their own.
    cmd = [sys.executable, "-m", "tests.conformance", "--ref", reference, "--cand", candidate, "-k", "updates/thread"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "1 matched, 0 differ", done.stdout


def _stream(
    *,
    thread: str = "01a22add-44fe-7881-80a7-5639f1ec5823",
    run: str = "01a22add-44ba-7262-8cf9-4238717d8780",
    streamed_run: str | None = None,
    at: str = "2026-11-30T05:11:13.123+00:00",
    version: str = "1.2.24",
    topic: str = "ice cream",
) -> list[tuple[object, ...]]:
    """A stream as the runner writes it down; `streamed_run` is the run id its metadata names."""
    headers = {
        "content-type": "text/event-stream; charset=utf-8",
        "location": f"/threads/{thread}/runs/{run}/stream",
        "content-location": f"/threads/{thread}/runs/{run}",
    }
    raw = (
        f'event: metadata\r\ndata: {{"run_id":"{streamed_run or run}","attempt":1}}\r\n\r\n'
        f'event: values\r\ndata: {{"topic":"{topic}","at":"{at}","langgraph_version":"{version}"}}\r\n\r\n'
    ).encode()
    return lines(200, headers, raw, thread_id=thread)


def test_only_what_legitimately_differs_is_normalised() -> None:
    stream = _stream()
    # Other ids in the same places, another moment, another server version: the same stream.
    assert _stream(thread="11111111-1111-1111-1111-111111111111", run="22222222-2222-2222-2222-222222222222") == stream
    assert _stream(at="2027-01-01T00:00:00Z", version="0.16.7") == stream
    # Metadata naming another run than `location` does is a difference, as is another payload.
    assert _stream(streamed_run="33333333-3333-3333-3333-333333333333") != stream
    assert _stream(topic="pie") != stream
