"""Atlantic buckets carry the chain's parameters (SPEC §7.3 CreateBucket, §16 ``--da-public-keys``).

The chain's STRK fee token comes from its feeder gateway (``get_contract_addresses``), as the original reads
it; the DA committee keys from ``--da-public-keys``. Both enter the OS config hash: the mock Atlantic server
validates each bucket's ``aggregatorParams`` and, as the 0.14.1 aggregator does, fails a bucket whose chain
id, fee token and keys do not give its children's OS config hash.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from madara_orchestrator.cli.compose import build_embedded_stack
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.devnet.adapters import devnet_pie
from madara_orchestrator.devnet.mock_atlantic import MockAtlanticConfig, MockAtlanticServer
from madara_orchestrator.devnet.program_output import devnet_config_hash
from madara_orchestrator.devnet.sequencer import CHAIN_ID, STRK_TOKEN, DevnetChain, DevnetSequencer
from madara_orchestrator.domain.proving import CreateBucket, CreateJob, RunAggregation, TaskState, TaskType
from madara_orchestrator.jobs.artifacts import decode_felts_json
from madara_orchestrator.provers.atlantic import AtlanticClient, AtlanticConfig, AtlanticNetwork
from madara_orchestrator.server.background import BackgroundServer
from madara_orchestrator.starknet.os_config import os_config_hash
from madara_orchestrator.starknet.pie import read_pie

APPCHAIN_FEE_TOKEN = 0x0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDE
"""The appchain's own fee token: not mainnet STRK."""
DA_KEYS = "0x2f1e0d,0x5c4b3a29"


async def test_run_sends_the_chains_fee_token_and_da_keys_in_its_buckets(tmp_path: Path) -> None:
    sequencer = DevnetSequencer(DevnetChain(tx_per_block=3, fee_token=APPCHAIN_FEE_TOKEN), block_time_s=0.05)
    server = BackgroundServer(sequencer.app)
    await server.start()
    atlantic = MockAtlanticServer(MockAtlanticConfig(processing_s=0.05))
    await atlantic.start()
    base = devnet_settings(tmp_path / "data", server.url, port=0)
    settings = Settings(
        {
            **base.values,
            "prover": "atlantic",
            "atlantic_service_url": atlantic.url,
            "atlantic_artifacts_base_url": atlantic.artifacts_url,
            "atlantic_api_key": "k",
            "atlantic_network": "testnet",
            "atlantic_mock_fact_hash": "true",
            "atlantic_prover_type": "starkware_sharp",
            "atlantic_settlement_layer": "ethereum",
            "da_public_keys": DA_KEYS,
            "max_batch_size": 2,
            "max_blocks_per_snos_batch": 1,
        }
    )
    stack = await build_embedded_stack(settings)
    sequencer.start_producing(max_blocks=4)
    await stack.runtime.start()
    try:
        deadline = time.monotonic() + 45
        while await stack.settlement.last_settled_block() != 3:
            assert time.monotonic() < deadline, "blocks 0..3 not settled through two Atlantic buckets in 45 s"
            await asyncio.sleep(0.1)
    finally:
        await sequencer.stop_producing()
        await stack.runtime.stop()
        await stack.close()
        await atlantic.stop()
        await server.stop()

    keys = [0x2F1E0D, 0x5C4B3A29]
    chain_config_hash = os_config_hash(CHAIN_ID, APPCHAIN_FEE_TOKEN, keys)
    assert chain_config_hash != devnet_config_hash()
    state = atlantic.state
    assert len(state.buckets) == 2
    for bucket in state.buckets.values():
        assert bucket["status"] == "DONE", "the aggregator's config-hash check passed"
        assert bucket["aggregatorParams"] == {
            "use_kzg_da": True,
            "full_output": False,
            "chain_id_hex": "0x" + CHAIN_ID.encode().hex(),
            "fee_token_address": hex(APPCHAIN_FEE_TOKEN),
            "public_keys": ["0x2f1e0d", "0x5c4b3a29"],
        }
        aggregator = next(q for q in state.queries.values() if q.data["bucketId"] == bucket["id"] and q.da_segment)
        assert aggregator.pie is not None
        output = read_pie(aggregator.pie).output_segment()
        at, hashes = 1, []
        for _ in range(output[0]):  # [size, OS program hash, *child output] per child
            hashes.append(output[at + 2 + 7])
            at += output[at]
        hashes.append(output[at + 7])  # then the aggregator's own output
        assert hashes == [chain_config_hash] * 3, "the children's and the aggregate's OS config hash"


async def test_mock_atlantic_refuses_bad_params_and_fails_a_bucket_for_another_chain() -> None:
    p = 2**251 + 17 * 2**192 + 1
    child = [100, 101, p - 1, 0, 0, 1000, 7, devnet_config_hash(), 0, 1, 0, 0, 1, 5, 6]
    async with MockAtlanticServer(MockAtlanticConfig(processing_s=0.01)) as server:
        async with httpx.AsyncClient(base_url=server.url, headers={"api-key": "k"}) as http:
            good = {"use_kzg_da": True, "full_output": False}
            for params, why in (
                ({**good, "public_keys": ["0x1", "12"]}, "public_keys"),
                ({**good, "fee_token_address": hex(p)}, "fee_token_address"),
                ({**good, "publicKeys": ["0x1"]}, "unknown field"),
                ({"use_kzg_da": "yes", "full_output": False}, "use_kzg_da"),
            ):
                body = {"aggregatorVersion": "snos_aggregator_0.14.1", "aggregatorParams": params, "mockProof": True}
                answer = await http.post("/buckets", json=body)
                assert answer.status_code == 400 and why in answer.json()["message"], (params, answer.text)
        outcomes = {}
        for name, fee_token in (("devnet chain", STRK_TOKEN), ("another fee token", APPCHAIN_FEE_TOKEN)):
            client = AtlanticClient(
                AtlanticConfig(
                    service_url=server.url,
                    api_key="k",
                    network=AtlanticNetwork.TESTNET,
                    artifacts_base_url=server.artifacts_url,
                    mock_fact_hash="true",
                    chain_id=CHAIN_ID,
                    fee_token_address=fee_token,
                )
            )
            try:
                bucket_id = await client.submit_task(CreateBucket())
                job = CreateJob(cairo_pie_zip=devnet_pie("snos", child), dedup_id=name, bucket_id=bucket_id)
                await client.submit_task(job)
                await client.submit_task(RunAggregation(bucket_id=bucket_id))
                status = await client.get_task_status(TaskType.AGGREGATION, bucket_id)
                for _ in range(200):
                    if status.state != TaskState.PROCESSING:
                        break
                    await asyncio.sleep(0.02)
                    status = await client.get_task_status(TaskType.AGGREGATION, bucket_id)
                outcomes[name] = status
                if name == "devnet chain":
                    artifacts = await client.get_aggregation_artifacts(bucket_id, include_proof=False)
                    assert decode_felts_json(artifacts.da_segment or b"[]") == [1, 1, 5, 6], "one child's diff"
            finally:
                await client.aclose()
    assert outcomes["devnet chain"].state == TaskState.SUCCEEDED
    failed = outcomes["another fee token"]
    assert failed.state == TaskState.FAILED and "OS config hash" in failed.message, failed
