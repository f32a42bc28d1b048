"""The bridge, the third edge: the HTTP/SSE API (gateway.http's routes) served by a separate
process in front of a gateway's gRPC port (`python -m gateway bridge`). It loads no run core,
storage or LangGraph: grpc, Starlette, the stubs and gateway.wire only."""
