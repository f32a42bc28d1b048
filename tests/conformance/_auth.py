"""Auth cases: short scripts of requests by several users, sent to a reference and a candidate
that serve the same langgraph.json with custom auth (tests/graphs/auth), whose answers must
agree: each step's status, the shape of an error's body, and the values a step asks to show
(`show`: dotted paths into the JSON body; `show_headers`). A step may `save` values of its
answer (thread and run ids) for later steps' paths and bodies, as `{name}`.

    python -m tests.conformance --ref URL --cand URL --auth [-k NAME]
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conformance._transcript import Line, _json_or_text, _shape

AUTH_CASES = Path(__file__).with_name("auth_cases.json")
# The callers of tests/graphs/auth/auth.py.
ACTORS: dict[str, dict[str, str]] = {
    "alice": {"authorization": "Bearer alice-token"},
    "bob": {"authorization": "Bearer bob-token"},
    "carol": {"authorization": "Bearer carol-token"},
    "banned": {"authorization": "Bearer banned"},
    "stranger": {"authorization": "Bearer nobody"},
    "anonymous": {},
}


@dataclass(frozen=True)
class Step:
    actor: str
    method: str
    path: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    save: dict[str, str] = field(default_factory=dict)
    show: tuple[str, ...] = ()
    show_headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthCase:
    name: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class AuthOutcome:
    case: AuthCase
    reference: list[Line]
    candidate: list[Line]
    error: str | None = None

    @property
    def matched(self) -> bool:
        return self.error is None and self.reference == self.candidate

    def report(self, *, verbose: bool = False) -> str:
        if self.error is not None:
            return f"ERROR {self.case.name}: {self.error}"
        if self.matched:
            return f"ok    {self.case.name} ({len(self.reference)} steps)"
        out = [f"DIFF  {self.case.name}"]
        for ref, cand in zip(self.reference, self.candidate, strict=False):
            marker = "  " if ref == cand else "≠ "
            out.append(f"  {marker}ref:  {json.dumps(ref)[:300]}")
            if ref != cand or verbose:
                out.append(f"    cand: {json.dumps(cand)[:300]}")
        return "\n".join(out)


def load_auth_cases(path: Path = AUTH_CASES, only: str | None = None) -> list[AuthCase]:
    cases = []
    for raw in json.loads(path.read_text()):
        steps = tuple(
            Step(
                actor=step["as"],
                method=step["method"],
                path=step["path"],
                body=step.get("body"),
                headers=step.get("headers", {}),
                save=step.get("save", {}),
                show=tuple(step.get("show", ())),
                show_headers=tuple(step.get("show_headers", ())),
            )
            for step in raw["steps"]
        )
        unknown = {step.actor for step in steps} - set(ACTORS)
        if unknown:
            raise ValueError(f"{path}: case {raw['name']!r} has unknown actors {sorted(unknown)}")
        cases.append(AuthCase(raw["name"], steps))
    names = [case.name for case in cases]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: case names must be unique")
    return [case for case in cases if only is None or only in case.name]


def _fill(value: Any, saved: dict[str, str]) -> Any:
    text = json.dumps(value)
    for name, found in saved.items():
        text = text.replace("{" + name + "}", found)
    return json.loads(text)


def _at(body: Any, path: str) -> Any:
    for part in path.split(".") if path else ():
        if isinstance(body, dict):
            body = body.get(part)
        elif isinstance(body, list) and part.isdigit() and int(part) < len(body):
            body = body[int(part)]
        else:
            return None
    return body


async def auth_transcript(client: httpx.AsyncClient, case: AuthCase) -> list[Line]:
    saved: dict[str, str] = {}
    lines: list[Line] = []
    for index, step in enumerate(case.steps):
        headers = {**ACTORS[step.actor], **step.headers}
        response = await client.request(
            step.method,
            _fill(step.path, saved),
            json=_fill(step.body, saved) if step.body is not None else None,
            headers=headers,
        )
        body = _json_or_text(response.content)
        for name, path in step.save.items():
            saved[name] = str(_at(body, path))
        line: list[Any] = [index, step.actor, step.method, step.path, response.status_code]
        if response.status_code >= 400:
            line.append(_shape(body))
        line += [[path, _at(body, path)] for path in step.show]
        line += [[name, response.headers.get(name)] for name in step.show_headers]
        lines.append(tuple(line))
    return lines


async def _transcript(client: httpx.AsyncClient, case: AuthCase) -> list[Line] | str:
    try:
        return await auth_transcript(client, case)
    except httpx.HTTPError as exc:
        return f"{client.base_url}: {type(exc).__name__}: {exc}"


async def compare_auth(ref_url: str, cand_url: str, cases: Sequence[AuthCase], *, jobs: int = 8) -> list[AuthOutcome]:
    slots = asyncio.Semaphore(jobs)
    async with (
        httpx.AsyncClient(base_url=ref_url, timeout=60) as ref,
        httpx.AsyncClient(base_url=cand_url, timeout=60) as cand,
    ):

        async def run(case: AuthCase) -> AuthOutcome:
            async with slots:
                reference, candidate = await asyncio.gather(_transcript(ref, case), _transcript(cand, case))
            if isinstance(reference, str) or isinstance(candidate, str):
                errors = [side for side in (reference, candidate) if isinstance(side, str)]
                return AuthOutcome(case, [], [], "; ".join(errors))
            return AuthOutcome(case, reference, candidate)

        return list(await asyncio.gather(*(run(case) for case in cases)))
