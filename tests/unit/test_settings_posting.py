"""The posting flags (issue 20, item 2): ``--settlement-deadline-seconds`` and its percentile and window reach
the runtime's posting policy; 0 (the default) sends at once; the deadline is for Ethereum settlement only."""

from __future__ import annotations

import argparse

import pytest

from madara_orchestrator.cli.compose import fee_cap, runtime_config
from madara_orchestrator.cli.settings import RUN_OPTIONS, add_options, load_run_settings
from madara_orchestrator.devnet.anvil import DEV_PRIVATE_KEYS
from madara_orchestrator.domain.errors import ConfigError
from madara_orchestrator.domain.posting import PostingPolicy
from madara_orchestrator.settlement.txmgr import FeePolicy

P = "MADARA_ORCHESTRATOR_"
COMMON = {
    P + "MADARA_RPC_URL": "http://127.0.0.1:9944",
    P + "SNOS_RUNNER": "devnet",
    P + "AGGREGATOR_RUNNER": "devnet",
}
DEVNET = {**COMMON, P + "PROVER": "devnet", P + "SETTLE_ON_DEVNET": "true"}
ETHEREUM = {
    **COMMON,
    P + "PROVER": "mock",
    P + "SETTLE_ON_ETHEREUM": "true",
    P + "ETHEREUM_SETTLEMENT_RPC_URL": "http://127.0.0.1:8545",
    P + "ETHEREUM_PRIVATE_KEY": DEV_PRIVATE_KEYS[0],
    P + "L1_CORE_CONTRACT_ADDRESS": "0x" + "11" * 20,
    P + "MOCK_VERIFIER_PRIVATE_KEY": DEV_PRIVATE_KEYS[1],
    P + "MOCK_VERIFIER_ADDRESS": "0x" + "22" * 20,
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_options(parser, RUN_OPTIONS)
    return parser.parse_args(argv)


def problems_of(argv: list[str], env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_run_settings(parse(argv), env)
    return "\n".join(caught.value.problems)


def test_without_a_deadline_settlements_go_at_once() -> None:
    posting = runtime_config(load_run_settings(parse([]), ETHEREUM)).posting
    assert posting == PostingPolicy() and not posting.waits
    assert (posting.percentile, posting.window_blocks) == (30.0, 300)


def test_the_flags_and_variables_reach_the_posting_policy() -> None:
    settings = load_run_settings(
        parse(["--settlement-deadline-seconds", "3600", "--settlement-fee-percentile", "20"]),
        {**ETHEREUM, P + "SETTLEMENT_FEE_WINDOW_BLOCKS": "900"},
    )
    posting = runtime_config(settings).posting
    assert posting.waits and (posting.deadline_s, posting.percentile, posting.window_blocks) == (3600, 20, 900)
    assert posting.problems() == []


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["--settlement-deadline-seconds", "600"], DEVNET, "--settlement-deadline-seconds times blob transactions"),
        (["--settlement-fee-percentile", "101"], ETHEREUM, "--settlement-fee-percentile must be from 0 to 100"),
        (["--settlement-fee-window-blocks", "0"], ETHEREUM, "--settlement-fee-window-blocks must be a positive"),
        (["--settlement-deadline-seconds", "-5"], ETHEREUM, "--settlement-deadline-seconds must be"),
    ],
)
def test_bad_posting_settings_are_named(argv: list[str], env: dict[str, str], expected: str) -> None:
    assert expected in problems_of(argv, env)


def test_the_policys_cap_is_the_signers() -> None:
    signer = FeePolicy(gas_limit=1_200_000, priority_fee_wei=10**9, max_total_fee_wei=5 * 10**15)
    cap = fee_cap(signer)
    for base, blob, n in ((10**9, 10**9, 3), (7, 1, 1), (3 * 10**9, 40 * 10**9, 6)):
        assert cap.liability(base, blob, n) == signer.liability(signer.fresh_fees(base, blob), n)
    assert cap.max_total_fee_wei == 5 * 10**15
