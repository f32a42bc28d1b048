"""The project's differential check of the HTTP/SSE streaming contract.

Each case of cases.json is a streamed run. It is sent to a reference server (the LangGraph Agent
Server, `langgraph dev`) and to a candidate (ours) serving the same graphs, and what each answered
(status, the headers clients act on, then every event) is compared line by line after taking out
what legitimately differs: ids and timestamps become placeholders numbered in order of sight, and
server, request and tracing metadata is dropped (see _normalise.py).

    python -m tests.conformance --ref http://127.0.0.1:8123 --cand http://127.0.0.1:2024 [-k NAME]

tests/http/test_conformance.py starts both servers on tests/graphs/langgraph.json and requires
every case to match.
"""

from __future__ import annotations

from tests.conformance._cases import CASES, Case, load_cases
from tests.conformance._runner import JOBS, Outcome, compare, outcome, transcripts
from tests.conformance._transcript import Line, lines, transcript

__all__ = [
    "CASES",
    "JOBS",
    "Case",
    "Line",
    "Outcome",
    "compare",
    "lines",
    "load_cases",
    "outcome",
    "transcript",
    "transcripts",
]
