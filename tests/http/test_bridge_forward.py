"""The bridge's declared RPCs (gateway.bridge.forward): requests built from the backend
interface's parameter names, and a name without a request field refused as the class is made."""

from __future__ import annotations

import pytest
from langgraph.gateway.v1 import threads_pb2, threads_pb2_grpc

from gateway.bridge.backend import RemoteBackend
from gateway.bridge.forward import Forward, Forwarding, Service, forward
from gateway.wire.agent_json import fill

THREADS = Service(threads_pb2, threads_pb2_grpc.ThreadsServiceStub)


def test_a_request_is_built_from_the_interfaces_parameter_names() -> None:
    search = RemoteBackend.search_threads
    assert isinstance(search, Forward)
    request = search.build((), {"metadata": {"a": 1}, "status": "busy", "limit": 3, "offset": 0, "ids": ["x"]})
    assert isinstance(request, threads_pb2.SearchThreadsRequest)
    assert request.status == threads_pb2.THREAD_STATUS_BUSY and request.limit == 3 and list(request.ids) == ["x"]
    assert request.metadata["a"] == 1 and not request.HasField("values")


def test_a_parameter_the_request_has_no_field_for_fails_as_the_class_is_made() -> None:
    class Interface:
        async def get_thread(self, thread_id: str, colour: str) -> None: ...

    with pytest.raises(Exception) as raised:

        class Backend(Forwarding):
            get_thread = forward(THREADS, "GetThread", interface=Interface)

    error: BaseException | None = raised.value
    while error is not None and not isinstance(error, TypeError):
        error = error.__cause__
    assert error is not None and "colour" in str(error)


def test_none_leaves_a_field_unset() -> None:
    request = fill(threads_pb2.CreateThreadRequest(), {"thread_id": None, "metadata": None, "if_exists": "raise"})
    assert request.thread_id == "" and not request.HasField("metadata") and request.if_exists == "raise"
