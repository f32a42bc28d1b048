"""Process plumbing: worker processes, event loops, logs, tracing, metrics, health."""
