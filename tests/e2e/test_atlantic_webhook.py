"""Atlantic's completion webhook wakes a job's verification at once; polling stays the fallback."""

from __future__ import annotations

from pathlib import Path

import httpx

from madara_orchestrator.cli.compose import build_embedded_stack
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.devnet.mock_atlantic import MockAtlanticConfig, MockAtlanticServer
from madara_orchestrator.devnet.sequencer import DevnetSequencer
from madara_orchestrator.domain.jobs import JobStatus, JobType, ProvingMetadata
from madara_orchestrator.provers.atlantic import AtlanticClient, AtlanticConfig, AtlanticNetwork
from madara_orchestrator.provers.atlantic_webhook import atlantic_webhook
from madara_orchestrator.server.app import create_app
from madara_orchestrator.server.background import BackgroundServer, free_port
from tests.helpers.pipeline import eventually

POLL_S = 300.0  # so long that only the webhook can explain a quick verification
SECRET = "webhook-secret-" + "0" * 16


async def test_webhook_wakes_verification_long_before_the_next_poll(tmp_path: Path, vectors_dir: Path) -> None:
    api_port = free_port()
    webhook_url = f"http://127.0.0.1:{api_port}/webhooks/atlantic"
    sequencer = DevnetSequencer()
    rpc = BackgroundServer(sequencer.app)
    await rpc.start()
    config = MockAtlanticConfig(processing_s=0.5, webhook_url=webhook_url, webhook_secret=SECRET)
    async with MockAtlanticServer(config) as atlantic:
        prover = AtlanticClient(
            AtlanticConfig(
                service_url=atlantic.url,
                api_key="test-key",
                network=AtlanticNetwork.TESTNET,
                artifacts_base_url=atlantic.artifacts_url,
                mock_fact_hash="true",
            )
        )
        base = devnet_settings(tmp_path / "data", rpc.url, port=api_port)
        settings = Settings(
            {
                **base.values,
                "prover": "atlantic",
                "verification_poll_seconds": POLL_S,
                "min_block_to_process": 10**9,  # no blocks: this test drives one job by hand
            }
        )
        stack = await build_embedded_stack(settings, prover=prover)
        api = BackgroundServer(create_app(stack.runtime, webhook=atlantic_webhook(SECRET)), port=api_port)
        await api.start()
        await stack.runtime.start()
        try:
            await stack.objects.put("1/cairo_pie.zip", (vectors_dir / "pie" / "fibonacci.zip").read_bytes())
            job = await stack.runtime.service.create_job(
                JobType.PROOF_CREATION,
                1,
                ProvingMetadata(block_number=0, input_path={"CairoPie": "1/cairo_pie.zip"}),
            )
            assert job is not None

            async def completed() -> bool:
                fresh = await stack.store.get_job(job.id)
                return fresh is not None and fresh.status == JobStatus.COMPLETED

            # The next poll is POLL_S (300 s) away: completing within this wait can only be the webhook's doing.
            await eventually(completed, 60, "the proof job to complete (woken by the webhook)")
            done = await stack.store.get_job(job.id)
            assert done is not None and done.common.verification_attempt_no == 0, "the wake-up spent no attempt"
            assert done.external_id, "the Atlantic query id"

            async with httpx.AsyncClient(base_url=api.url) as client:
                reply = await client.post("/webhooks/atlantic", json={"atlanticQueryId": "q", "status": "DONE"})
                assert reply.status_code == 401, "unsigned"
                reply = await client.post(f"/webhooks/atlantic/{SECRET}", content=b"not json")
                assert reply.status_code == 400 and reply.json()["success"] is False
                reply = await client.post(
                    f"/webhooks/atlantic/{SECRET}", json={"atlanticQueryId": "unknown-query", "status": "DONE"}
                )
                assert reply.status_code == 200 and reply.json()["data"] == {"woken_job_ids": []}
        finally:
            await stack.runtime.stop()
            await api.stop()
            await stack.close()
    await rpc.stop()
