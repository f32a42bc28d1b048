"""The light Python client's reading of RunEventBatch (parts_of, through views of the message
that leave payloads encoded): its parts are those of the plain reading of each event through
the generated RunEvent, for every case, for batches read by columns and an event at a time,
and for encodings the gateway does not send but a newer one might."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from langgraph.gateway.client import StreamPart, get_client
from langgraph.gateway.client._async import parts_of
from langgraph.gateway.v1 import runs_pb2

from tests._server import GatewayProcess
from tests.conftest import Stubs

_KINDS = {
    runs_pb2.MESSAGES_EVENT_KIND_TUPLE: "messages",
    runs_pb2.MESSAGES_EVENT_KIND_METADATA: "messages/metadata",
    runs_pb2.MESSAGES_EVENT_KIND_PARTIAL: "messages/partial",
    runs_pb2.MESSAGES_EVENT_KIND_COMPLETE: "messages/complete",
}


def plainly(events: Iterable[runs_pb2.RunEvent]) -> list[StreamPart]:
    """The events as StreamParts, read one by one through the generated message."""
    parts = []
    for event in events:
        case = event.WhichOneof("event")
        if case is None or case == "end":
            continue
        if case == "metadata":
            data: Any = {"run_id": event.metadata.run_id, "attempt": event.metadata.attempt}
        elif case == "error":
            data = {"error": event.error.error, "message": event.error.message}
        else:
            data = json.loads(getattr(event, case).json)
        name = _KINDS.get(event.messages.kind, "messages") if case == "messages" else case
        parts.append(StreamPart("|".join([name, *event.namespace]), data, event.event_id))
    return parts


def event(i: int, case: str | None = "custom", text: str | None = None, **fields: Any) -> runs_pb2.RunEvent:
    made = runs_pb2.RunEvent(event_id=f"1796661619709-{i}", **fields)
    if case == "end":
        made.end.status = runs_pb2.RUN_STATUS_SUCCESS
    elif case == "metadata":
        made.metadata.run_id, made.metadata.attempt = "run", 2
    elif case == "error":
        made.error.error, made.error.message = "ValueError", 'bad "input" \u00e9'
    elif case == "messages":
        made.messages.json, made.messages.kind = '[{"content": "hi"}, {}]', runs_pb2.MESSAGES_EVENT_KIND_PARTIAL
    elif case is not None:
        getattr(made, case).json = json.dumps({"i": i, "s": "\u00e9\u2603" * i}) if text is None else text
    return made


def check(events: Sequence[runs_pb2.RunEvent], tail: bytes = b"") -> list[StreamPart]:
    encoded = runs_pb2.RunEventBatch(events=events).SerializeToString() + tail
    parts = parts_of(encoded)
    assert parts == plainly(runs_pb2.RunEventBatch.FromString(encoded).events)
    assert all(type(p) is StreamPart and type(p.event) is str and type(p.id) is str for p in parts)
    return parts


PAYLOADS = ("values", "updates", "debug", "custom", "events", "tasks", "checkpoints", "tools")
BATCHES = {
    # Read by columns.
    "one case": [event(i) for i in range(40)],
    "one case, then the end": [event(i, "values") for i in range(40)] + [event(40, "end")],
    # Texts of one-byte lengths and longer, a byte either side of each length of the length.
    "texts of every length": [
        event(i, "updates", text=json.dumps("x" * (n - 2)))
        for i, n in enumerate((1, 2, 3, 126, 127, 128, 129, 16383, 16384, 16385, 300_000))
    ],
    # Read an event at a time (through a view from three events on).
    "texts of every length, cases mixed": [
        event(i, PAYLOADS[i % len(PAYLOADS)], text=json.dumps("x" * (n - 2)))
        for i, n in enumerate((1, 2, 3, 126, 127, 128, 129, 16383, 16384, 16385, 2_097_151, 2_097_152))
    ],
    "every case": [event(i, case) for i, case in enumerate(("metadata", *PAYLOADS, "messages", "error", "end"))],
    "a namespace": [event(0), event(1, namespace=["node_2:1f0e"]), event(2, namespace=["a:1", "b:2", "c:3"])],
    "messages of every kind": [
        runs_pb2.RunEvent(event_id=kind, messages=runs_pb2.MessagesEvent(json="[1]", kind=kind))
        for kind in runs_pb2.MessagesEventKind.keys()
    ],
    "the end between": [event(0), event(1, "end"), event(2)],
    "two ends": [event(0), event(1, "end"), event(2, "end")],
    "only ends": [event(0, "end"), event(1, "end"), event(2, "end")],
    "metadata first": [event(0, "metadata"), event(1), event(2)],
    "an event without id": [event(0), runs_pb2.RunEvent(custom=runs_pb2.CustomEvent(json="1")), event(2)],
    "an event without case": [event(0), event(1, None), event(2)],
    "one event": [event(0)],
    "two events": [event(0, "metadata"), event(1, namespace=["a:1"])],
    "no event": [],
}


@pytest.mark.parametrize("events", BATCHES.values(), ids=BATCHES.keys())
def test_parts_are_the_plain_reading_of_each_event(events: list[runs_pb2.RunEvent]) -> None:
    check(events)


def test_payload_messages_with_more_than_json_are_decoded() -> None:
    # A field of a newer gateway's payload, after the text and before it: the text is still found.
    after = runs_pb2.CustomEvent(json='{"a": 1}').SerializeToString() + b"\x10\x05"
    before = b"\x10\x05" + runs_pb2.CustomEvent(json='"b"').SerializeToString()
    long = runs_pb2.ValuesEvent(json=json.dumps("v" * 300)).SerializeToString() + b"\x10\x05"
    events = [runs_pb2.RunEvent(event_id=f"e-{i}") for i in range(4)]
    events[0].custom.MergeFromString(after)
    events[1].custom.MergeFromString(before)
    events[2].custom.json = "[]"
    events[3].values.MergeFromString(long)
    # By columns, an event at a time, and as RunEventBatch.
    assert [p.data for p in check(events[:3])] == [{"a": 1}, "b", []]
    assert [p.data for p in check(events)] == [{"a": 1}, "b", [], "v" * 300]
    assert [p.data for p in check(events[:2])] == [{"a": 1}, "b"]


def test_events_of_a_case_the_client_does_not_know_are_left_out() -> None:
    # An event with id "k-2" and a case numbered 36: neither its part nor its id shifts the others.
    unknown = b"\x0a\x08\x0a\x03k-2\xa2\x02\x00"
    without_id = runs_pb2.RunEventBatch(events=[runs_pb2.RunEvent(custom=runs_pb2.CustomEvent(json="5"))])
    parts = check([event(0), event(1)], unknown + without_id.SerializeToString())
    assert [(p.id, p.data) for p in parts] == [
        ("1796661619709-0", {"i": 0, "s": ""}),
        ("1796661619709-1", parts[1].data),
        ("", 5),
    ]


async def test_streamed_parts_are_the_stubs_events(gateway: GatewayProcess, stubs: Stubs) -> None:
    """A run's events replayed through the client and through the generated stubs: the same
    parts, for a long stream, texts longer than a byte's length, modes mixed, and subgraphs."""
    async with get_client(gateway.grpc_target) as client:
        thread = await client.threads.create()
        runs = [
            ("burst", {"n": 500}, ["custom"], False),
            ("burst", {"n": 50, "pad": 200}, ["custom", "updates", "values"], False),
            ("subgraphs", {"foo": "foo"}, ["updates", "values", "debug"], True),
            ("nested", {"topic": "x"}, ["updates", "values", "messages-tuple"], True),
        ]
        for graph, graph_input, modes, subgraphs in runs:
            run = await client.runs.create(
                thread["thread_id"],
                graph,
                input=graph_input,
                stream_mode=modes,
                stream_subgraphs=subgraphs,
                stream_resumable=True,
            )
            await client.runs.join(thread["thread_id"], run["run_id"])
            parts = [p async for p in client.runs.join_stream(thread["thread_id"], run["run_id"], last_event_id="0")]
            request = runs_pb2.JoinRunStreamRequest(
                thread_id=thread["thread_id"], run_id=run["run_id"], last_event_id="0"
            )
            events = [e async for batch in stubs.runs.JoinRunStreamBatch(request) for e in batch.events]
            assert parts == plainly(events), graph
            assert len(parts) > 3 and parts[0].event == "metadata"
            if subgraphs:
                assert any("|" in p.event for p in parts), graph
