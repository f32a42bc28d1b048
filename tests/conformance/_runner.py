"""Runs cases on the reference and the candidate at once and says where their transcripts part."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from tests.conformance._cases import Case
from tests.conformance._transcript import Line, transcript

# Runs of the reference start up to half a second late (its workers poll for them), so the
# cases are run side by side; the reference needs as many workers (`--n-jobs-per-worker`).
JOBS = 8
_SHOWN = 600


@dataclass(frozen=True)
class Outcome:
    case: Case
    reference: list[Line]
    candidate: list[Line]
    # Why the case could not be run at all (a setup request failed, a server is down).
    error: str | None = None

    @property
    def matched(self) -> bool:
        return self.error is None and self.reference == self.candidate

    def report(self, *, verbose: bool = False) -> str:
        name = self.case.name
        if self.error is not None:
            return f"ERROR {name}: {self.error}"
        events = sum(1 for line in self.reference if line[0] == "event")
        if self.matched:
            return f"ok    {name} ({events} events)"
        out = [
            f"DIFF  {name}: {len(self.reference)} lines from the reference, {len(self.candidate)} from the candidate"
        ]
        index = _first_difference(self.reference, self.candidate)
        out += [f"  first difference, line {index}:", f"    ref:  {_show(self.reference, index)}"]
        out += [f"    cand: {_show(self.candidate, index)}"]
        if verbose:
            out += ["  reference:", *_listing(self.reference), "  candidate:", *_listing(self.candidate)]
        return "\n".join(out)


def _first_difference(a: list[Line], b: list[Line]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def _show(lines: list[Line], index: int) -> str:
    return json.dumps(lines[index])[:_SHOWN] if index < len(lines) else "(nothing more)"


def _listing(lines: list[Line]) -> list[str]:
    return [f"    {i:3} {json.dumps(line)[:_SHOWN]}" for i, line in enumerate(lines)]


async def _transcript(client: httpx.AsyncClient, case: Case) -> list[Line] | str:
    # Both sides always run to the end, so a failure on one leaves no request of the other behind.
    try:
        return await transcript(client, case)
    except httpx.HTTPError as exc:
        return f"{client.base_url}: {type(exc).__name__}: {exc}"


def outcome(case: Case, reference: list[Line] | str, candidate: list[Line] | str) -> Outcome:
    """The case's outcome of its transcripts on each side (or why a side could not run it)."""
    if isinstance(reference, str) or isinstance(candidate, str):
        errors = [side for side in (reference, candidate) if isinstance(side, str)]
        return Outcome(case, [], [], error="; ".join(errors))
    return Outcome(case, reference, candidate)


async def _run(case: Case, ref: httpx.AsyncClient, cand: httpx.AsyncClient, slots: asyncio.Semaphore) -> Outcome:
    async with slots:
        reference, candidate = await asyncio.gather(_transcript(ref, case), _transcript(cand, case))
    return outcome(case, reference, candidate)


async def transcripts(
    url: str, cases: Sequence[Case], *, jobs: int = JOBS, headers: dict[str, str] | None = None
) -> list[list[Line] | str]:
    """Each case's transcript on one server, `jobs` cases at a time (or why it could not be run):
    the reference's, say, made once for several candidates."""
    slots = asyncio.Semaphore(jobs)
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers or {}) as client:

        async def one(case: Case) -> list[Line] | str:
            async with slots:
                return await _transcript(client, case)

        return list(await asyncio.gather(*(one(case) for case in cases)))


async def compare(
    ref_url: str, cand_url: str, cases: Sequence[Case], *, jobs: int = JOBS, api_key: str | None = None
) -> list[Outcome]:
    """Each case on both servers, `jobs` cases at a time; outcomes in the order of `cases`."""
    slots = asyncio.Semaphore(jobs)
    cand_headers = {"x-api-key": api_key} if api_key else {}
    async with (
        httpx.AsyncClient(base_url=ref_url, timeout=60) as ref,
        httpx.AsyncClient(base_url=cand_url, timeout=60, headers=cand_headers) as cand,
    ):
        return list(await asyncio.gather(*(_run(case, ref, cand, slots) for case in cases)))
