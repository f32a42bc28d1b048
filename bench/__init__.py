"""A side-by-side benchmark of the gateway (gRPC and SSE), the reference `langgraph dev` server
and LangGraph's own in-process `graph.astream`, on the same graphs (bench/graphs.py)."""
