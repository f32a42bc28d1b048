"""The HTTP/SSE edge: the LangGraph Agent Server API over the same run core."""
