"""An L3 through the API: every stage of the L3 plan runs, the dashboard shows the L3's stages, settled
batches' files are marked to expire (the original never collects an L3's files), each batch settles once,
with the original's calldata on the Piltover double."""

from __future__ import annotations

from pathlib import Path

import httpx

from madara_orchestrator.devnet.starknet_l2 import UPDATE_STATE_SELECTOR
from madara_orchestrator.domain.jobs import JobStatus, JobType
from madara_orchestrator.starknet.stone_proof import program_output_of_proof
from tests.helpers.pipeline import eventually, start_pipeline

BLOCKS = 4


async def test_an_l3_settles_each_snos_batch_once_and_shows_its_stages(tmp_path: Path) -> None:
    p = await start_pipeline(tmp_path, blocks=BLOCKS, l3=True)
    try:
        assert p.l2 is not None
        double = p.l2.double

        async def settled() -> bool:
            return (
                double.state.block_number == BLOCKS - 1
                and (await p.stack.store.count_jobs()).get((JobType.STATE_TRANSITION, JobStatus.COMPLETED), 0) == BLOCKS
            )

        await eventually(settled, 60, f"{BLOCKS} L3 blocks settled on the double")
        assert double.update_state_count == BLOCKS, "one update_state per SNOS batch, none twice"
        # Every update_state the double recorded is [len, snos_output…, len, layout_bridge_output…] and nothing
        # more, the outputs being those the batch's SNOS proof and bridge proof attest.
        objects = tmp_path / "data" / "objects"
        calls = [c for tx in double.transactions for c in tx.calls if c.selector == UPDATE_STATE_SELECTOR]
        assert len(calls) == BLOCKS and not any(tx.is_reverted for tx in double.transactions)
        for index, call in enumerate(calls, start=1):
            snos = program_output_of_proof((objects / str(index) / "proof.json").read_bytes())
            bridge = program_output_of_proof((objects / str(index) / "proof_part2.json").read_bytes())
            assert list(call.calldata) == [len(snos), *snos, len(bridge), *bridge], f"batch {index}"
        counts = await p.stack.store.count_jobs()
        for job_type in (JobType.PROOF_REGISTRATION, JobType.DATA_SUBMISSION):
            assert counts.get((job_type, JobStatus.COMPLETED)) == BLOCKS
        assert not any(t == JobType.AGGREGATOR for t, _ in counts)

        async with httpx.AsyncClient(base_url=p.api.url) as http:
            overview = (await http.get("/api/v1/dashboard/overview")).json()["data"]
            assert list(overview["stages"]) == ["snos", "proof", "registration", "da", "settlement"]
            assert overview["stages"]["settlement"]["through"] == BLOCKS - 1
            assert overview["settled"] == BLOCKS - 1
            block = (await http.get("/api/v1/dashboard/blocks/2")).json()["data"]
            kinds = [j["job_type"] for j in block["jobs"]]
            assert kinds == ["SnosRun", "ProofCreation", "ProofRegistration", "DataSubmission", "StateTransition"]
            assert block["settlement_txs"] and block["settlement_txs"][0]["start_block"] == 2

        async def marked() -> bool:
            await p.stack.runtime.triggers.run_once(p.stack.runtime.triggers.enabled[-1])
            return (objects / ".expiry" / "1" / "proof_part2.json").exists()

        await eventually(marked, 20, "the settled L3 batch's files marked to expire")
        for name in ("cairo_pie.zip", "proof.json", "blob_data.txt"):
            assert (objects / ".expiry" / "1" / name).exists(), name
    finally:
        await p.close()
