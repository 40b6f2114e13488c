"""The batching gates in the whole embedded orchestrator (devnet sequencer over HTTP, SQLite, the devnet
settlement ledger): a stop before a block lets the blocks before it settle, shows on the batching trigger's
health with one alert, and lifts as the operator acts (the reference agrees again; the version is allowed
and the orchestrator restarted)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from madara_orchestrator.devnet.sequencer import DevnetSequencer
from madara_orchestrator.domain.health import TriggerPolicy
from madara_orchestrator.engine.plan import TriggerName
from tests.helpers.batching import ReferenceSequencer, served
from tests.helpers.pipeline import Pipeline, eventually, start_pipeline

BLOCKS = 10
HELD = 5


def quick_retries(p: Pipeline) -> Pipeline:
    """A stopped batching trigger is run again after at most 0.5 s (not 60 s), so the tests need not wait."""
    triggers = p.stack.runtime.triggers
    triggers.config = dataclasses.replace(triggers.config, health=TriggerPolicy(backoff_base_s=0.1, backoff_max_s=0.5))
    return p


def batching_error(p: Pipeline) -> str:
    """The batching trigger's last error while it fails (L2: both trigger names run the same pass)."""
    health = p.stack.runtime.triggers.health()
    errors = [health[n].last_error for n in (TriggerName.AGGREGATOR_BATCHING, TriggerName.SNOS_BATCHING) if n in health]
    return " ".join(e for e in errors if e)


async def settled_through(p: Pipeline, block: int) -> bool:
    return await p.stack.settlement.last_settled_block() == block


async def test_a_block_whose_hash_differs_at_the_reference_holds_settlement_before_it(tmp_path: Path) -> None:
    sequencer = DevnetSequencer(block_time_s=0.02, tx_per_block=3)
    reference = ReferenceSequencer(sequencer.chain, tampered=[HELD])
    async with served(reference.app) as reference_url:
        p = quick_retries(
            await start_pipeline(
                tmp_path, blocks=BLOCKS, sequencer=sequencer, overrides={"replay_bounds_rpc_url": reference_url}
            )
        )
        try:
            await eventually(lambda: settled_through(p, HELD - 1), 30, f"blocks 0..{HELD - 1} to settle")

            async def alerted() -> bool:
                return any(f"block {HELD}" in subject for subject, _ in p.stack.recorded_alerts.sent)

            await eventually(alerted, 10, f"the alert about block {HELD}")
            assert f"batching stopped before block {HELD}: replay bounds" in batching_error(p)
            assert await p.stack.settlement.last_settled_block() == HELD - 1
            subjects = [s for s, _ in p.stack.recorded_alerts.sent if "Batching stopped" in s]
            assert len(subjects) == 1, subjects

            reference.tampered.clear()  # the reference agrees again
            await eventually(lambda: settled_through(p, BLOCKS - 1), 30, "every block to settle")
            assert batching_error(p) == ""
            assert len([s for s, _ in p.stack.recorded_alerts.sent if "Batching stopped" in s]) == 1
        finally:
            await p.close()


async def test_an_unknown_version_holds_settlement_before_it_until_allowed(tmp_path: Path) -> None:
    sequencer = DevnetSequencer(block_time_s=0.02, tx_per_block=3)
    sequencer.announce_version("0.99.0", from_block=HELD)
    p = quick_retries(await start_pipeline(tmp_path, blocks=BLOCKS, sequencer=sequencer))
    try:
        await eventually(lambda: settled_through(p, HELD - 1), 30, f"blocks 0..{HELD - 1} to settle")

        async def alerted() -> bool:
            return any("0.99.0" in subject for subject, _ in p.stack.recorded_alerts.sent)

        await eventually(alerted, 10, "the alert about the unknown version")
        assert f"batching stopped before block {HELD}: unknown Starknet version '0.99.0'" in batching_error(p)
        assert await p.stack.settlement.last_settled_block() == HELD - 1
    finally:
        await p.close()
    # The operator allows the version and restarts, on the same data.
    p = await start_pipeline(
        tmp_path, blocks=BLOCKS, sequencer=sequencer, overrides={"allow_starknet_versions": "0.99.0"}
    )
    try:
        await eventually(lambda: settled_through(p, BLOCKS - 1), 30, "every block to settle")
        assert not any("Batching stopped" in s for s, _ in p.stack.recorded_alerts.sent)
    finally:
        await p.close()
