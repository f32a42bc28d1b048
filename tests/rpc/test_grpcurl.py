"""grpcurl, through server reflection: what a user types at a terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests._server import GatewayProcess

GRPCURL = str(Path(sys.executable).parent / "grpcurl")


def grpcurl(gateway: GatewayProcess, *args: str, data: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [GRPCURL, "-plaintext"]
    if data is not None:
        cmd += ["-d", data]
    return subprocess.run([*cmd, gateway.grpc_target, *args], capture_output=True, text=True, timeout=60)


def json_stream(text: str) -> list[dict]:
    decoder, out, i = json.JSONDecoder(), [], 0
    text = text.strip()
    while i < len(text):
        obj, i = decoder.raw_decode(text, i)
        out.append(obj)
        while i < len(text) and text[i].isspace():
            i += 1
    return out


def test_list_and_describe(gateway: GatewayProcess) -> None:
    listed = grpcurl(gateway, "list")
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) >= {
        "langgraph.gateway.v1.AssistantsService",
        "langgraph.gateway.v1.ThreadsService",
        "langgraph.gateway.v1.RunsService",
        "grpc.health.v1.Health",
    }
    described = grpcurl(gateway, "describe", "langgraph.gateway.v1.RunsService")
    assert (
        "rpc RunStream ( .langgraph.gateway.v1.CreateRunRequest ) returns ( stream .langgraph.gateway.v1.RunEvent );"
        in described.stdout
    )
    event = grpcurl(gateway, "describe", "langgraph.gateway.v1.RunEvent")
    for case in (
        "metadata",
        "values",
        "updates",
        "messages",
        "debug",
        "custom",
        "events",
        "tasks",
        "checkpoints",
        "error",
        "end",
    ):
        assert f" {case} = " in event.stdout


def test_stream_a_run_in_several_modes(gateway: GatewayProcess) -> None:
    body = json.dumps(
        {
            "assistant_id": "custom",
            "input": {"query": "example"},
            "stream_mode": ["STREAM_MODE_UPDATES", "STREAM_MODE_CUSTOM"],
        }
    )
    result = grpcurl(gateway, "langgraph.gateway.v1.RunsService/RunStream", data=body)
    assert result.returncode == 0, result.stderr
    events = json_stream(result.stdout)
    kinds = [next(k for k in e if k not in ("event_id", "namespace")) for e in events]
    assert kinds == ["metadata", "custom", "custom", "updates", "end"]
    assert json.loads(events[1]["custom"]["json"]) == {"custom_key": "Generating custom data inside node"}
    assert json.loads(events[3]["updates"]["json"]) == {"node": {"answer": "some data"}}
    assert events[-1]["end"]["status"] == "RUN_STATUS_SUCCESS"


def test_errors_are_statuses_with_messages(gateway: GatewayProcess) -> None:
    result = grpcurl(gateway, "langgraph.gateway.v1.RunsService/RunStream", data='{"assistant_id": "nope"}')
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "Code: NotFound" in out and "nope" in out
    # grpcurl prints the status's details too.
    assert '"reason":"ASSISTANT_NOT_FOUND"' in out.replace(" ", "")


def test_health(gateway: GatewayProcess) -> None:
    result = grpcurl(gateway, "grpc.health.v1.Health/Check", data="{}")
    assert json.loads(result.stdout) == {"status": "SERVING"}
