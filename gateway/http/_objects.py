"""The API's objects with the keys in the order the Agent Server sends them."""

from __future__ import annotations

from typing import Any

from gateway.shared.records import RunRecord


def run_json(record: RunRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "thread_id": record.thread_id,
        "assistant_id": record.assistant_id,
        "metadata": record.metadata,
        "status": record.status,
        "kwargs": record.kwargs,
        "multitask_strategy": record.multitask_strategy,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "langsmith_session_name": None,
    }


def info(version: str, langgraph_version: str | None) -> dict[str, Any]:
    return {
        "version": version,
        "langgraph_py_version": langgraph_version,
        "flags": {
            "assistants": True,
            "crons": True,
            "langsmith": False,
            "langsmith_tracing_replicas": False,
            "langsmith_tracing_session_on_runs": False,
        },
        "host": {
            "kind": "self-hosted",
            "project_id": None,
            "host_revision_id": None,
            "revision_id": None,
            "tenant_id": None,
        },
    }
