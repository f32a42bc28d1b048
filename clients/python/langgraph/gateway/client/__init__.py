"""A light, typed client of the LangGraph gRPC gateway.

    from langgraph.gateway.client import get_client

    client = get_client("localhost:50051")
    async for part in client.runs.stream(None, "agent", input={"topic": "cats"}, stream_mode="updates"):
        print(part.event, part.data)

`url` is `host:port` (plaintext) or `grpcs://host:port` (TLS, with the system's roots unless
`credentials` are given)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from langgraph.gateway.client._async import (
    AssistantsClient,
    CronsClient,
    GatewayClient,
    RunArgs,
    RunsClient,
    StoreClient,
    StreamPart,
    ThreadsClient,
)
from langgraph.gateway.client._sync import SyncGatewayClient
from langgraph.gateway.client.errors import GatewayError

__all__ = [
    "AssistantsClient",
    "CronsClient",
    "GatewayClient",
    "GatewayError",
    "RunArgs",
    "RunsClient",
    "StoreClient",
    "StreamPart",
    "SyncGatewayClient",
    "ThreadsClient",
    "get_client",
    "get_sync_client",
]

# What the gateway may send in one message (its --grpc-max-message-mb; 64 MiB by default).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Quiet runs (an LLM thinking) keep their connection: the gateway accepts a ping every 10 s.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_permit_without_calls", 0),
)


def _target(url: str) -> tuple[str, bool]:
    for scheme, tls in (("grpcs://", True), ("https://", True), ("grpc://", False), ("http://", False)):
        if url.startswith(scheme):
            return url.removeprefix(scheme).rstrip("/"), tls
    return url, False


def _metadata(api_key: str | None, headers: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    pairs = [(k.lower(), v) for k, v in (headers or {}).items()]
    if api_key is not None:
        pairs.append(("x-api-key", api_key))
    return tuple(pairs)


def _channel(
    url: str, credentials: grpc.ChannelCredentials | None, options: Sequence[tuple[str, Any]]
) -> grpc.aio.Channel:
    target, tls = _target(url)
    merged = dict(_OPTIONS)
    merged.update(dict(options))
    if tls or credentials is not None:
        return grpc.aio.secure_channel(target, credentials or grpc.ssl_channel_credentials(), list(merged.items()))
    return grpc.aio.insecure_channel(target, list(merged.items()))


def get_client(
    url: str = "localhost:50051",
    *,
    api_key: str | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> GatewayClient:
    """The async client. `headers` go with every call (custom auth's, `authorization`);
    `timeout` is the deadline of each unary call; `options` are grpc channel options."""
    return GatewayClient(_channel(url, credentials, options), metadata=_metadata(api_key, headers), timeout=timeout)


def get_sync_client(
    url: str = "localhost:50051",
    *,
    api_key: str | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> SyncGatewayClient:
    """The blocking client, with the same arguments and methods as `get_client`'s."""
    return SyncGatewayClient(
        lambda: _channel(url, credentials, options), metadata=_metadata(api_key, headers), timeout=timeout
    )
