"""The gRPC edge: thin servicers over the run core."""
