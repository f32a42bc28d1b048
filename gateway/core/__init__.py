"""The run core: executes graphs, fans their events out, and keeps threads and runs. It
knows nothing of gRPC or HTTP; the edges in gateway.rpc and gateway.http translate."""
