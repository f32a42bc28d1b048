"""python -m tests.conformance --ref URL --cand URL [--auth] [-k NAME]: exit status 0 when every case matches.

With --auth, the auth cases (tests/conformance/auth_cases.json), for servers of
tests/graphs/auth/langgraph.json."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from tests.conformance import CASES, JOBS, compare, load_cases
from tests.conformance._auth import compare_auth, load_auth_cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.conformance", description=__doc__)
    parser.add_argument("--ref", required=True, help="the reference server, e.g. langgraph dev's URL")
    parser.add_argument("--cand", required=True, help="the candidate server's URL")
    parser.add_argument("--cases", type=Path, default=CASES, help="a cases file (default: %(default)s)")
    parser.add_argument("-k", dest="only", help="only the cases whose name contains this")
    parser.add_argument("--jobs", type=int, default=JOBS, help="cases run at once (default: %(default)s)")
    parser.add_argument("--api-key", help="sent as x-api-key to the candidate")
    parser.add_argument("-v", "--verbose", action="store_true", help="list both transcripts of a difference")
    parser.add_argument("--auth", action="store_true", help="run the auth cases (servers of tests/graphs/auth)")
    args = parser.parse_args(argv)
    if args.auth:
        auth_cases = load_auth_cases(only=args.only)
        if not auth_cases:
            parser.error(f"no auth case name contains {args.only!r}")
        auth_outcomes = asyncio.run(compare_auth(args.ref, args.cand, auth_cases, jobs=args.jobs))
        for auth_outcome in auth_outcomes:
            print(auth_outcome.report(verbose=args.verbose))
        differ = sum(not outcome.matched for outcome in auth_outcomes)
        print(f"{len(auth_outcomes) - differ} matched, {differ} differ")
        return 1 if differ else 0
    cases = load_cases(args.cases, args.only)
    if not cases:
        parser.error(f"no case name contains {args.only!r}")
    outcomes = asyncio.run(compare(args.ref, args.cand, cases, jobs=args.jobs, api_key=args.api_key))
    for outcome in outcomes:
        print(outcome.report(verbose=args.verbose))
    differ = sum(not outcome.matched for outcome in outcomes)
    print(f"{len(outcomes) - differ} matched, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
