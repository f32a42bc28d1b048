"""The gateway serving tests/graphs/auth/langgraph.json: the Agent Server docs' owner-only auth
(tests/graphs/auth/auth.py), CORS for one origin and a custom app. Alice and Bob own what they
create; Carol may not delete; `Bearer banned` is refused with 403, anything else with 401."""

from __future__ import annotations

import json
from pathlib import Path

from tests._server import ROOT, GatewayProcess

AUTH_CONFIG = ROOT / "tests" / "graphs" / "auth" / "langgraph.json"
ALICE = {"authorization": "Bearer alice-token"}
BOB = {"authorization": "Bearer bob-token"}
CAROL = {"authorization": "Bearer carol-token"}
BANNED = {"authorization": "Bearer banned"}
ANONYMOUS: dict[str, str] = {}
# The tokens tests/graphs/auth/auth.py accepts.
TOKENS = ("alice-token", "bob-token", "carol-token")


def accepted(authorization: str | None) -> bool:
    """Whether the test auth module takes this Authorization header (its own rule)."""
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and token in TOKENS


def auth_gateway(folder: Path, *extra_args: str, config: Path = AUTH_CONFIG) -> tuple[GatewayProcess, Path]:
    """A started gateway on the auth config; the file its canary graph notes each run in."""
    canary = folder / "canary.txt"
    canary.touch()
    proc = GatewayProcess(
        folder / "gateway.sqlite", config=config, extra_args=extra_args, env={"CANARY_FILE": str(canary)}
    ).start()
    return proc, canary


def auth_config(folder: Path, **http: object) -> Path:
    """The auth config with absolute paths, its `http` section updated, written into `folder`."""
    config = json.loads(AUTH_CONFIG.read_text())
    base = AUTH_CONFIG.parent
    config["dependencies"] = [str((base / dep).resolve()) for dep in config["dependencies"]]
    config["graphs"] = {name: _absolute(base, ref) for name, ref in config["graphs"].items()}
    config["auth"]["path"] = _absolute(base, config["auth"]["path"])
    config["http"] = {**config["http"], "app": _absolute(base, config["http"]["app"]), **http}
    out = folder / "langgraph.json"
    out.write_text(json.dumps(config, indent=2))
    return out


def _absolute(base: Path, ref: str) -> str:
    path, _, attribute = ref.rpartition(":")
    return f"{(base / path).resolve()}:{attribute}"
