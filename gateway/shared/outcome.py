"""A run's outcome, as `/wait` and `/join` answer it: gathered from the run's own events by
whoever reads them (the executor as it publishes, the bridge from a gRPC stream), so that every
path answers the same for the same run."""

from __future__ import annotations

import orjson


class Outcome:
    """The run's error, else its interrupts, else its last root `values`."""

    __slots__ = ("error", "interrupts", "values")

    def __init__(self) -> None:
        self.error: bytes | None = None
        self.interrupts: list[bytes] = []
        self.values: bytes | None = None

    def add(self, name: str, ns: tuple[str, ...] | list[str], data: bytes) -> None:
        if name == "error":
            self.error = data
        elif not ns and (name == "values" or name == "updates"):
            if name == "values":
                self.values = data
            if b'"__interrupt__"' in data:
                self.interrupts.append(data)

    def result(self) -> bytes | None:
        """None when the events said nothing of the result: the caller falls back to the
        thread's stored values."""
        if self.error is not None:
            return b'{"__error__":' + self.error + b"}"
        if len(self.interrupts) == 1:
            return self.interrupts[0]
        if self.interrupts:
            merged = [i for chunk in self.interrupts for i in orjson.loads(chunk).get("__interrupt__", ())]
            return orjson.dumps({"__interrupt__": merged})
        return self.values
