"""What the context-manager factory saw, in the one module every loaded copy of graphs.py
imports (the server loads a graph file once per graph): (event, run id), in order."""

from __future__ import annotations

EVENTS: list[list[str]] = []
