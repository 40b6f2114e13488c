"""Failures are visible (issue 17, item 5): ``/health`` is DEGRADED, naming the trigger and its error, while a
trigger keeps failing, and when the settled block is above the sequencer's head (another chain's state); the
dashboard's overview shows the same, and no "lag 0" for a settled block above the head.

An embedded orchestrator (SQLite, files, the devnet ledger) whose sequencer is a JSON-RPC server that knows
only the chain id and the head: every other call answers a JSON-RPC error, as in the report."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import httpx
import pytest

from madara_orchestrator.cli.compose import EmbeddedStack, build_embedded_stack
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.interfaces import SettlementClient
from madara_orchestrator.server.app import create_app
from tests.helpers.jsonrpc_server import JsonRpcServer, RpcFault, running_jsonrpc_server
from tests.helpers.pipeline import eventually

HEAD = 5
SECRET = "apikey=SECRET0123"


@dataclass
class Api:
    stack: EmbeddedStack
    client: httpx.AsyncClient


@pytest.fixture
def sequencer() -> Iterator[JsonRpcServer]:
    handlers = {"starknet_chainId": lambda _: "0x534e5f5345504f4c4941", "starknet_blockNumber": lambda _: HEAD}
    with running_jsonrpc_server(handlers) as server:
        yield server


@pytest.fixture
async def api(tmp_path: Path, sequencer: JsonRpcServer) -> AsyncIterator[Api]:
    # The RPC URL carries a key in its query, as hosted RPC URLs do: it must not leak.
    settings = devnet_settings(tmp_path / "data", f"{sequencer.url}?{SECRET}", port=0)
    stack = await build_embedded_stack(settings)
    app = create_app(stack.runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield Api(stack, client)
    await stack.runtime.triggers.stop()
    await stack.close()


class SettledAt:
    """A settlement layer whose core contract says ``block`` is settled."""

    def __init__(self, block: int) -> None:
        self.block = block

    async def last_settled_block(self) -> int | None:
        return self.block


async def overview(client: httpx.AsyncClient) -> dict[str, object]:
    reply = await client.get("/api/v1/dashboard/overview")
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert isinstance(data, dict)
    return data


async def test_health_is_up_until_batching_keeps_failing_then_degraded_naming_it_and_its_error(api: Api) -> None:
    assert (await api.client.get("/health")).text == "UP"
    triggers = api.stack.runtime.triggers
    batching = triggers.enabled[0]
    for _ in range(3):
        await triggers.run_once(batching)

    reply = await api.client.get("/health")
    assert reply.status_code == 503
    lines = reply.text.splitlines()
    assert lines[0] == "DEGRADED", reply.text
    assert lines[1].startswith(f"trigger {batching} failing (3 times since "), reply.text
    assert lines[1].endswith("RpcError: RPC error -32601: Method not found"), reply.text

    reply = await api.client.get("/health", headers={"accept": "application/json"})
    assert reply.status_code == 503
    body = reply.json()
    assert body["status"] == "DEGRADED" and body["head"] == HEAD
    assert all(backend["up"] for backend in body["backends"].values()), "the backends themselves answer"
    state = body["triggers"][str(batching)]
    assert state["failing"] is True and state["consecutive_failures"] == 3 and state["next_try_in_s"] == 8
    assert state["last_error"] == "RpcError: RPC error -32601: Method not found"
    assert body["problems"] == [lines[1]]

    data = await overview(api.client)
    assert lines[1] in cast(list[str], data["errors"]), "the dashboard's banner says the same"
    assert data["batching_failing"] is True and data["batched_through"] is None
    for text in (reply.text, str(data)):
        assert "SECRET0123" not in text


async def test_a_settled_block_above_the_head_is_an_error_on_health_and_on_the_dashboard_not_lag_zero(
    api: Api,
) -> None:
    api.stack.runtime.adapters.settlement = cast(SettlementClient, SettledAt(72))
    reply = await api.client.get("/health")
    assert reply.status_code == 503
    lines = reply.text.splitlines()
    assert lines[0] == "DEGRADED" and len(lines) == 2, reply.text
    assert lines[1].startswith("settled block 72 is above the sequencer's head 5: the settlement layer holds another")
    body = (await api.client.get("/health", headers={"accept": "application/json"})).json()
    assert body["status"] == "DEGRADED" and body["settled"] == 72 and body["head"] == HEAD
    assert body["problems"] == [lines[1]]

    data = await overview(api.client)
    assert data["lag"] == {
        "blocks": None,
        "seconds": None,
        "level": "unknown",
        "normal_blocks": 2 * 100,
        "normal_seconds": 60.0 + 1800.0,
    }, "no 'lag 0 blocks: every block is settled'"
    assert lines[1] in cast(list[str], data["errors"])


async def test_the_health_of_a_settled_block_at_or_below_the_head_is_up(api: Api) -> None:
    api.stack.runtime.adapters.settlement = cast(SettlementClient, SettledAt(HEAD))
    reply = await api.client.get("/health", headers={"accept": "application/json"})
    assert reply.status_code == 200 and reply.json()["status"] == "UP" and reply.json()["problems"] == []
    data = await overview(api.client)
    assert cast(dict[str, object], data["lag"])["blocks"] == 0 and data["errors"] == []


async def test_the_chain_watcher_says_once_that_the_head_is_unavailable_not_at_every_poll(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(_: object) -> int:
        raise RpcFault(-32603, "Internal error")

    handlers = {"starknet_chainId": lambda _: "0x534e5f5345504f4c4941", "starknet_blockNumber": refuse}
    with running_jsonrpc_server(handlers) as sequencer:
        settings = devnet_settings(tmp_path / "data", sequencer.url, port=0)
        stack = await build_embedded_stack(Settings({**settings.values, "chain_poll_interval_seconds": 0.01}))
        caplog.set_level(logging.INFO, logger="madara_orchestrator.runtime")
        runtime = stack.runtime
        watch = asyncio.ensure_future(runtime._chain_watch_loop())
        try:

            async def polled_often() -> bool:
                return sum(c.get("method") == "starknet_blockNumber" for c in sequencer.calls) >= 10

            await eventually(polled_often, 10, "ten polls of the head")
        finally:
            await runtime.stop()
            await asyncio.gather(watch, return_exceptions=True)
            await stack.close()
    said = [r.getMessage() for r in caplog.records if "sequencer head unavailable" in r.getMessage()]
    assert said == ["sequencer head unavailable: RPC error -32603: Internal error"]
