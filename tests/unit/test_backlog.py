"""The DA backlog (issue 21, item 3): blocks produced and not settled, their state-diff felts (known per
batch, estimated for unbatched blocks) and blobs; ``GET /backlog``, the ``orchestrator_backlog_*`` gauges,
and the ``--backlog-alert-blocks`` alert, once when crossed and once when it clears."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from madara_orchestrator.backends.alerts import RecordingAlerts
from madara_orchestrator.backends.memory import MemoryStore
from madara_orchestrator.cli.compose import build_embedded_stack, runtime_config
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.domain.batches import AggregatorBatch, AggregatorBatchStatus, SnosBatch, SnosBatchStatus
from madara_orchestrator.engine.backlog import BacklogWatch, measure
from madara_orchestrator.engine.metrics import Metrics
from madara_orchestrator.server.app import create_app
from tests.helpers.jsonrpc_server import JsonRpcServer, running_jsonrpc_server

A = AggregatorBatchStatus


async def batches(store: MemoryStore) -> None:
    """Batch 1 (blocks 0-9) is settled; batch 2 (10-19) is closed, batch 3 (20-24) open."""
    for index, start, end, felts, status in (
        (1, 0, 9, 5000, A.COMPLETED),
        (2, 10, 19, 9000, A.READY_FOR_STATE_UPDATE),
        (3, 20, 24, 100, A.OPEN),
    ):
        await store.insert_aggregator_batch(
            AggregatorBatch(
                index=index, start_block=start, end_block=end, status=status, created_at=0, updated_at=0, blob_len=felts
            )
        )


async def test_known_felts_per_batch_and_an_estimate_for_unbatched_blocks() -> None:
    store = MemoryStore()
    await batches(store)
    backlog = await measure(store, 30, 9, aggregator=True)
    assert (backlog.blocks, backlog.batched_blocks, backlog.unbatched_blocks, backlog.batches) == (21, 15, 6, 2)
    rate = (5000 + 9000 + 100) / 25  # felts per block of the latest batches
    assert backlog.felts_per_block == pytest.approx(rate)
    assert backlog.felts_estimated == round(rate * 6)
    assert backlog.felts == 9000 + 100 + round(rate * 6)
    assert backlog.blobs == 3 + 1 + 1, "each batch its own blobs (9000 felts: 3; 100: 1), the estimate 1"


async def test_nothing_settled_counts_from_block_zero_and_nothing_batched_has_no_felts() -> None:
    backlog = await measure(MemoryStore(), 4, None, aggregator=True)
    assert (backlog.blocks, backlog.unbatched_blocks, backlog.felts, backlog.blobs) == (5, 5, 0, 0)
    settled_up = await measure(MemoryStore(), 4, 4, aggregator=True)
    assert (settled_up.blocks, settled_up.felts, settled_up.blobs) == (0, 0, 0)


async def test_an_l3_backlog_has_blocks_and_no_blobs() -> None:
    store = MemoryStore()
    await store.insert_snos_batch(
        SnosBatch(index=1, start_block=0, end_block=3, status=SnosBatchStatus.CLOSED, created_at=0, updated_at=0)
    )
    backlog = await measure(store, 6, None, aggregator=False)
    assert (backlog.blocks, backlog.batched_blocks, backlog.unbatched_blocks) == (7, 4, 3)
    assert backlog.felts is None and backlog.blobs is None


class Chain:
    def __init__(self, head: int, settled: int | None) -> None:
        self.head, self.settled = head, settled

    async def block_number(self) -> int:
        return self.head

    async def last_settled_block(self) -> int | None:
        return self.settled


async def test_the_threshold_alerts_once_when_crossed_and_once_when_it_clears() -> None:
    store = MemoryStore()
    await batches(store)
    chain = Chain(30, 9)
    alerts = RecordingAlerts()
    metrics = Metrics()
    watch = BacklogWatch(
        db=store,
        locks=store,
        sequencer=chain,  # type: ignore[arg-type]
        settlement=chain,  # type: ignore[arg-type]
        metrics=metrics,
        alerts=alerts,
        aggregator=True,
        owner="instance-a",
        alert_blocks=20,
    )
    await watch.watch_once()
    await watch.watch_once()
    assert [s for s, _ in alerts.sent] == ["Settlement backlog above threshold"], "once, not at every look"
    assert "21 blocks produced and not settled (--backlog-alert-blocks 20)" in alerts.sent[0][1]
    rendered = metrics.render().decode()
    assert "orchestrator_backlog_blocks 21.0" in rendered and "orchestrator_backlog_blobs 5.0" in rendered
    chain.settled = 24
    await watch.watch_once()
    assert [s for s, _ in alerts.sent] == ["Settlement backlog above threshold", "Settlement backlog cleared"]
    assert "orchestrator_backlog_blocks 6.0" in metrics.render().decode()


async def test_only_the_instance_holding_the_watch_alerts() -> None:
    store = MemoryStore()
    await batches(store)
    chain = Chain(30, 9)
    alerts = RecordingAlerts()
    common = {"db": store, "locks": store, "sequencer": chain, "settlement": chain, "alerts": alerts}
    watches = [
        BacklogWatch(**common, metrics=Metrics(), aggregator=True, owner=owner, alert_blocks=20)  # type: ignore[arg-type]
        for owner in ("instance-a", "instance-b")
    ]
    for watch in watches:
        await watch.watch_once()
    assert len(alerts.sent) == 1


HEAD = 5


@pytest.fixture
def sequencer() -> Iterator[JsonRpcServer]:
    handlers = {"starknet_chainId": lambda _: "0x534e5f5345504f4c4941", "starknet_blockNumber": lambda _: HEAD}
    with running_jsonrpc_server(handlers) as server:
        yield server


@pytest.fixture
async def http(tmp_path: Path, sequencer: JsonRpcServer) -> AsyncIterator[httpx.AsyncClient]:
    stack = await build_embedded_stack(devnet_settings(tmp_path / "data", sequencer.url, port=0))
    app = create_app(stack.runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield client
    await stack.runtime.triggers.stop()
    await stack.close()


async def test_the_route_and_the_gauges_carry_the_backlog(http: httpx.AsyncClient) -> None:
    reply = await http.get("/backlog")
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert (data["head"], data["settled"], data["blocks"], data["unbatched_blocks"]) == (HEAD, None, HEAD + 1, HEAD + 1)
    assert data["alert_blocks"] is None and data["errors"] == []
    assert reply.json()["message"] == f"{HEAD + 1} block(s) produced and not settled"
    assert f"orchestrator_backlog_blocks {float(HEAD + 1)}" in (await http.get("/metrics")).text


def test_the_threshold_flag_reaches_the_runtime(tmp_path: Path) -> None:
    settings = devnet_settings(tmp_path, "http://127.0.0.1:9", port=0)
    assert runtime_config(settings).backlog_alert_blocks is None
    flagged = Settings({**settings.values, "backlog_alert_blocks": 300}, settings.secrets)
    assert runtime_config(flagged).backlog_alert_blocks == 300


async def test_without_the_head_the_backlog_is_unknown_and_says_why() -> None:
    class Down:
        async def block_number(self) -> int:
            raise ConnectionError("sequencer down at http://user:pw@node.example/key")

    chain = Chain(30, 9)
    watch = BacklogWatch(
        db=MemoryStore(),
        locks=MemoryStore(),
        sequencer=Down(),  # type: ignore[arg-type]
        settlement=chain,  # type: ignore[arg-type]
        metrics=Metrics(),
        alerts=RecordingAlerts(),
        aggregator=True,
        owner="a",
        alert_blocks=1,
    )
    backlog = await watch.watch_once()
    assert backlog.blocks is None and backlog.settled == 9
    assert backlog.errors and "pw" not in backlog.errors[0] and "/key" not in backlog.errors[0]
