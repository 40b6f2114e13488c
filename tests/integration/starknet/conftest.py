"""A real HTTP JSON-RPC server with canned Starknet data, and a client pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from madara_orchestrator.starknet.rpc import StarknetRpcClient
from tests.helpers.jsonrpc_server import CannedStarknet, JsonRpcServer, running_jsonrpc_server


@pytest.fixture
def canned_starknet() -> CannedStarknet:
    return CannedStarknet()


@pytest.fixture
def jsonrpc_server(canned_starknet: CannedStarknet) -> Iterator[JsonRpcServer]:
    with running_jsonrpc_server(canned_starknet.handlers()) as server:
        yield server


@pytest.fixture
async def rpc_client(jsonrpc_server: JsonRpcServer) -> AsyncIterator[StarknetRpcClient]:
    client = StarknetRpcClient(jsonrpc_server.url, retry_pause_s=0.01, timeout_s=10)
    yield client
    await client.aclose()
