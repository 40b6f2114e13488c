"""What only some settings use is imported where it is built (cli/compose.py, cli/signers.py, cli/telemetry.py,
cli/devnet.py), so ``orchestrator run`` starts without what it was not configured with: the modules a fresh
interpreter holds after importing the command, and each settlement client wired as the isinstance checks it
replaced wired it (a paused settlement holds its sender; Ethereum's fee history, cap and finalized hook).
The command imports no sympy (crypto-cpp-py's Python module imports it; Pedersen hashes go through the
library's C export, starknet/pedersen.py), a devnet run none of the remote signer's libraries, and ``--help``
neither sympy nor eth-abi (imported where contracts are deployed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from madara_orchestrator.cli.compose import build_embedded_stack, fee_cap
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.cli.settings import Settings

NOT_AT_START = (
    "boto3",
    "botocore",
    "starknet_py",
    "opentelemetry.sdk",
    "grpc",
    "psycopg",
    "eth_abi",
    "eth_keys",
    "rlp",
    "ckzg",
    "madara_orchestrator.starknet.kzg",
    "madara_orchestrator.cli.otlp",
    "madara_orchestrator.devnet.adapters",
    "madara_orchestrator.devnet.mock_atlantic",
    "madara_orchestrator.settlement.ethereum",
    "madara_orchestrator.settlement.starknet",
    "madara_orchestrator.settlement.kms_signer",
    "madara_orchestrator.settlement.remote_signer",
    "madara_orchestrator.backends.aws_client",
    "madara_orchestrator.backends.postgres_db",
    "sympy",
    "crypto_cpp_py",
    "eth_utils",
    "madara_orchestrator.devnet.anvil",
)
"""Each needed by some settings only: the AWS SDK (--aws*, KMS), Starknet settlement, OTLP export, the devnet
doubles, PostgreSQL, the Ethereum settlement client and its signers, ckzg (blob DA: its trusted setup is
loaded by the composition root, cli/compose.py ``load_kzg_setup``, only when the settings need it); sympy and
crypto-cpp-py's Python module (0.3 s; only Starknet signing imports it), eth-utils (with rlp and eth-abi) and
the devnet's anvil launcher (``run`` only names its variable: devnet/names.py)."""

NEVER = ("sympy", "crypto_cpp_py")
"""crypto-cpp-py's Python module imports sympy; starknet/pedersen.py hashes without it."""


def loaded_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after ``statement`` (the test's environment: its PYTHONPATH)."""
    code = f"{statement}\nimport sys\nprint('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return set(done.stdout.split())


def among(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(name for name in names if name in modules or any(m.startswith(name + ".") for m in modules))


def test_run_and_its_composition_root_import_none_of_what_only_some_settings_use() -> None:
    modules = loaded_after(
        "import madara_orchestrator.cli.main, madara_orchestrator.cli.run, madara_orchestrator.cli.compose"
    )
    assert "madara_orchestrator.cli.compose" in modules
    assert among(modules, NOT_AT_START) == []


def test_a_devnet_run_imports_none_of_the_remote_signers_libraries(tmp_path: Path) -> None:
    """Settings checked and the stack built as ``orchestrator run`` builds them with the devnet doubles, whose
    OS config hash is a Pedersen hash: no rlp, eth-utils or eth-abi (the remote signer's header check)."""
    argv = ["--settle-on-devnet", "--data-dir", str(tmp_path / "data"), "--madara-rpc-url", "http://127.0.0.1:9"]
    argv += ["--prover", "devnet", "--snos-runner", "devnet", "--aggregator-runner", "devnet"]
    modules = loaded_after(
        "import argparse, asyncio\n"
        "from madara_orchestrator.cli.compose import build_embedded_stack\n"
        "from madara_orchestrator.cli.settings import RUN_OPTIONS, add_options, load_run_settings\n"
        "parser = argparse.ArgumentParser()\n"
        "add_options(parser, RUN_OPTIONS)\n"
        f"settings = load_run_settings(parser.parse_args({argv!r}), {{}})\n"
        "async def built():\n"
        "    stack = await build_embedded_stack(settings)\n"
        "    await stack.close()\n"
        "asyncio.run(built())"
    )
    assert "madara_orchestrator.devnet.program_output" in modules, "the devnet's OS config hash was computed"
    assert among(modules, ("rlp", "eth_utils", "eth_abi")) == []


def test_help_loads_every_command_without_sympy_or_eth_abi() -> None:
    modules = loaded_after("from madara_orchestrator.cli.main import build_parser\nbuild_parser()")
    assert "madara_orchestrator.cli.devnet" in modules, "--help registers every command"
    assert among(modules, (*NEVER, "eth_abi")) == []


def test_devnet_chain_starts_without_the_composition_root_or_starknet_py() -> None:
    modules = loaded_after("import madara_orchestrator.cli.devnet_chain")
    assert among(modules, ("madara_orchestrator.cli.compose", "starknet_py", "opentelemetry.sdk", "boto3")) == []


async def test_each_settlement_client_is_wired_as_before(tmp_path: Path) -> None:
    base = devnet_settings(tmp_path / "ledger", "http://127.0.0.1:9", port=0)
    ledger = await build_embedded_stack(base)
    try:
        assert ledger.settlement_choice.sender is None and ledger.settlement_choice.ethereum is None
        assert ledger.runtime.adapters.settlement_started is None
        assert await ledger.settlement_summary() == "blobs settled on the devnet ledger (no L1): 0"
    finally:
        await ledger.close()

    not_on_ledger = {"settle_on_devnet": False, "data_dir": str(tmp_path / "sending")}
    ethereum = await build_embedded_stack(
        Settings(
            {
                **base.values,
                **not_on_ledger,
                "settle_on_ethereum": True,
                "ethereum_rpc_url": "http://127.0.0.1:9",
                "ethereum_private_key": "0x" + "11" * 32,
                "l1_core_contract_address": "0x" + "22" * 20,
            }
        )
    )
    try:
        client = ethereum.settlement_choice.client
        txmgr = client.txmgr  # type: ignore[union-attr]
        assert ethereum.settlement_choice.sender is txmgr and ethereum.settlement_choice.ethereum is client
        assert txmgr.hold == ethereum.runtime.pauses.settlement_hold and txmgr.on_finalized is not None
        assert ethereum.runtime.adapters.fee_history is client.rpc  # type: ignore[union-attr]
        assert ethereum.runtime.config.fee_cap == fee_cap(txmgr.policy)
        assert ethereum.runtime.adapters.settlement_started is not None
        assert txmgr.backend is client.rpc, "the composition root gives the client and its sender one rpc"
    finally:
        await ethereum.close()
    assert client.rpc._client.is_closed, "the composition's exits close the rpc it opened"  # type: ignore[union-attr]

    starknet = await build_embedded_stack(
        Settings(
            {
                **base.values,
                **not_on_ledger,
                "layer": "l3",
                "settle_on_starknet": True,
                "starknet_rpc_url": "http://127.0.0.1:9",
                "starknet_account_address": "0x1",
                "starknet_private_key": "0x2",
                "starknet_cairo_core_contract_address": "0x3",
            }
        )
    )
    try:
        client = starknet.settlement_choice.client
        txmgr = client.txmgr  # type: ignore[union-attr]
        assert starknet.settlement_choice.sender is txmgr and starknet.settlement_choice.ethereum is None
        assert txmgr.hold == starknet.runtime.pauses.settlement_hold
        assert starknet.runtime.adapters.fee_history is None and starknet.runtime.config.fee_cap is None
        assert starknet.runtime.adapters.settlement_started is not None
        assert txmgr.chain is client.chain  # type: ignore[union-attr]
    finally:
        await starknet.close()
    assert client.chain.rpc._client.is_closed  # type: ignore[union-attr]
