"""A settlement signed without the key in the process, on anvil, through the real durable sender: by a
remote signer (the Web3Signer-protocol double, holding the key in the test process) and by AWS KMS (moto,
the key generated inside it). The worker is SIGKILLed between signing and broadcast; on restart it sends the
stored transaction, and the batch settles once, from the signer's account, with nonce 0."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from eth_account import Account

from madara_orchestrator.backends.tx_store import SqliteTxStore
from madara_orchestrator.devnet.anvil import Anvil, AnvilConfig
from madara_orchestrator.domain.settlement_tx import AttemptStatus
from madara_orchestrator.settlement.blob_tx import decode_pooled_blob_tx
from tests.conftest import REPO_ROOT
from tests.helpers.remote_signer import RemoteSignerDouble, serving
from tests.integration.settlement.conftest import Batch, Devnet, deploy, make_batch
from tests.integration.settlement.helpers import operator_transactions, state_updates
from tests.integration.settlement.test_crash_recovery import _finish

pytestmark = pytest.mark.slow

SIGNER_KEY = "0x" + "5e" * 32
"""The remote signer's key: held by the double, never given to the worker."""


def _worker(
    devnet: Devnet, db: Path, batch: Batch, tmp_path: Path, how: list[str], crash_at: str | None
) -> subprocess.Popen[str]:
    batch_file = tmp_path / f"batch-{batch.index}.json"
    batch_file.write_text(json.dumps({"program_output": batch.program_output, "blobs": [b.hex() for b in batch.blobs]}))
    cmd = [sys.executable, "-m", "tests.integration.settlement.settle_worker", "--rpc-url", devnet.anvil.url]
    cmd += ["--core", devnet.contracts.core_contract, "--db", str(db), "--key", f"batch-{batch.index}"]
    cmd += ["--batch", str(batch_file), *how] + (["--crash-at", crash_at] if crash_at else [])
    env = {k: v for k, v in os.environ.items() if k != "SETTLE_WORKER_PRIVATE_KEY"}
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@contextlib.contextmanager
def remote_signer(chain_id: int) -> Iterator[tuple[str, list[str]]]:
    double = RemoteSignerDouble([SIGNER_KEY], chain_id=chain_id, blobs=True)
    address = Account.from_key(SIGNER_KEY).address
    with serving(double) as url:
        try:
            yield address, ["--signer-url", url, "--signer-address", address]
        finally:
            assert double.invalid == []
    calls = [r for r in double.requests if r["method"] == "eth_signTransaction"]
    assert len(calls) == 1, "signed once: the restart sent the stored transaction"
    tx = calls[0]["params"][0]
    assert tx["from"] == address and tx["blobVersionedHashes"] and tx["maxFeePerBlobGas"]
    assert "blobs" not in tx, "the sidecar never goes to the signer"


@contextlib.contextmanager
def kms_key() -> Iterator[tuple[str, list[str]]]:
    from madara_orchestrator.settlement.kms_signer import address_of_public_key

    kms = boto3.client("kms")
    key_id = kms.create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    public = kms.get_public_key(KeyId=key_id)["PublicKey"]
    yield address_of_public_key(public, flag="--kms-key-id", key_id=key_id), ["--kms-key-id", key_id]


@pytest.mark.parametrize("how", ["remote-signer", "kms"])
async def test_signed_without_the_key_killed_between_signing_and_broadcast_settles_once(
    anvil_factory: Callable[[AnvilConfig], Anvil], tmp_path: Path, how: str, request: pytest.FixtureRequest
) -> None:
    devnet = await deploy(anvil_factory(AnvilConfig(hardfork="prague")))
    if how == "kms":
        request.getfixturevalue("moto_kms")
    db = tmp_path / "orchestrator.db"
    batch = make_batch(0)
    await devnet.register(batch)
    signing = remote_signer(await devnet.rpc.chain_id()) if how == "remote-signer" else kms_key()
    with signing as (address, flags):
        await devnet.rpc.request("anvil_setBalance", [address, hex(10**20)])
        crashed = _worker(devnet, db, batch, tmp_path, flags, "signed")
        _, err = crashed.communicate(timeout=120)
        assert crashed.returncode == -signal.SIGKILL, err[-3000:]

        store = SqliteTxStore(db)
        stored = await store.attempts("batch-0")
        assert [a.status for a in stored] == [AttemptStatus.SIGNED]
        assert (await devnet.rpc.request("txpool_content"))["pending"] == {}, "killed before broadcast"
        pooled = decode_pooled_blob_tx(stored[0].raw)
        assert pooled["tx_hash"] == stored[0].tx_hash and pooled["blobs"] == batch.blobs, "stored with our sidecar"

        result = json.loads(await _finish(_worker(devnet, db, batch, tmp_path, flags, None), timeout_s=120))
        assert result["tx_hash"] == stored[0].tx_hash, "the stored transaction, not a second one"
        assert result["nonce"] == 0
        assert [a[:2] for a in result["attempts"]] == [[1, "Finalized"]]
        again = json.loads(await _finish(_worker(devnet, db, batch, tmp_path, flags, None), timeout_s=120))
        assert again["already_settled"] is True
        store.close()

    assert [u[1] for u in await state_updates(devnet.rpc, devnet.contracts.core_contract)] == [0]
    sent = await operator_transactions(devnet.rpc, address)
    assert [(t["hash"], int(t["nonce"], 16), int(t["type"], 16)) for t in sent] == [(stored[0].tx_hash, 0, 3)]
