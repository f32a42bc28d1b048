"""A gRPC streaming gateway for LangGraph, with an HTTP/SSE bridge for the LangGraph SDKs."""

__version__ = "0.1.0"
