"""The raw grpc.aio floor: a plain grpc.aio server that streams pre-encoded messages of one size
to the same kind of client, with nothing else in the process. `RunStream` (one message per
event) is read against it: its server CPU per event, and its events/s, over this server's per
message. `python -m bench._raw PORT_FILE` serves it; the bench starts it as a child."""

from __future__ import annotations

import asyncio
import re
import struct
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
from langgraph.gateway.v1 import runs_pb2

from bench._clients import GRPC_OPTIONS, Timing, _timed
from bench._servers import ROOT, ServerProcess

METHOD = "/bench.Raw/Stream"


def long_stream_message_size(count: int) -> int:
    """The mean size of the long stream's events on the wire: a custom event {"i": k}."""
    sizes = [
        runs_pb2.RunEvent(
            event_id=f"1796651523425-{k + 2}", custom=runs_pb2.CustomEvent(json=f'{{"i":{k}}}')
        ).ByteSize()
        for k in range(count)
    ]
    return round(sum(sizes) / len(sizes))


async def _stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    count, size = struct.unpack(">II", request)
    message = b"x" * size
    for _ in range(count):
        yield message


async def _serve() -> None:
    handler = grpc.method_handlers_generic_handler(
        "bench.Raw", {"Stream": grpc.unary_stream_rpc_method_handler(_stream)}
    )
    server = grpc.aio.server(handlers=(handler,), options=GRPC_OPTIONS)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"raw grpc.aio serving on {port}", flush=True)
    await server.wait_for_termination()


class RawServer(ServerProcess):
    name = "raw grpc.aio"

    def __init__(self) -> None:
        super().__init__()
        self.port = 0

    def start(self, timeout: float = 60) -> RawServer:
        self._spawn([sys.executable, "-m", "bench._raw"], ROOT, {})
        self.port = int(self._wait_for(re.compile(r"serving on (\d+)"), timeout).group(1))
        return self


class RawClient:
    """Asks the raw server for the long stream's count of messages of its mean size and reads
    them as bytes through a grpc.aio channel, as the gRPC target reads RunStream."""

    name = "raw grpc.aio"

    def __init__(self, target: str) -> None:
        self.channel = grpc.aio.insecure_channel(target, options=GRPC_OPTIONS)
        self.stream: Callable[..., Any] = self.channel.unary_stream(METHOD)
        self._size = 0

    async def run(self, graph: str, graph_input: dict[str, Any], mode: str, *, thread_id: str | None = None) -> Timing:
        if graph != "burst":
            raise NotImplementedError("the raw floor serves the long stream only")
        count = int(graph_input["count"])
        self._size = self._size or long_stream_message_size(count)
        timing = Timing(time.perf_counter())

        async def consume() -> None:
            first = True
            async for _ in self.stream(struct.pack(">II", count, self._size)):
                if timing.first is None:
                    timing.first = time.perf_counter()
                if first:
                    timing.at_first += 1
                    first = False
                timing.events += 1

        return await _timed(consume(), timing)

    async def create_thread(self) -> str:
        raise NotImplementedError

    async def hold(
        self, graph: str, graph_input: dict[str, Any], opened: Callable[[], None], stop: asyncio.Event
    ) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        await self.channel.close()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    asyncio.run(_serve())
