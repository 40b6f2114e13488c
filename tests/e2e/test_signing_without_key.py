"""``orchestrator run`` as a process that holds no L1 key: its settlements are signed by a remote signer (the
Web3Signer-protocol double, over mutual TLS with an authorization header) or by AWS KMS (moto), and the mock
prover's fact registrations by the other. The devnet chain settles on anvil; meanwhile and afterwards the
process's environment (``/proc/<pid>/environ``), arguments (``/proc/<pid>/cmdline``), its log and every file
it stored (SQLite database, transaction store, object store) are searched for the remote signer's keys, in hex
with and without ``0x``: none is there."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from eth_account import Account

from madara_orchestrator.devnet.adapters import DEVNET_AGGREGATOR_PROGRAM_HASH
from madara_orchestrator.server.background import free_port
from madara_orchestrator.settlement.kms_signer import address_of_public_key
from tests.e2e.test_run_provers import (
    BLOCKS,
    devnet_sequencer,
    jobs_by_status,
    local_l1,
    orchestrator_run,
    wait_until_settled,
)
from tests.helpers.remote_signer import RemoteSignerDouble, mutual_tls, serving
from tests.helpers.sharp import make_pki

SETTLEMENT_KEY = "0x" + "a1" * 31 + "07"
VERIFIER_KEY = "0x" + "b2" * 31 + "09"
TOKEN = "Bearer signer-token-4kq"


def key_texts() -> list[str]:
    """Each remote signer key as it could appear: with and without 0x, lower and upper case."""
    texts = []
    for key in (SETTLEMENT_KEY, VERIFIER_KEY):
        body = key[2:]
        texts += [key, body, body.upper()]
    return texts


def found_in(data: bytes) -> list[str]:
    return [t for t in key_texts() if t.encode() in data or t.encode("utf-16-le") in data]


def proc_file(pid: int, name: str) -> bytes:
    """``/proc/<pid>/<name>`` of the running process."""
    return Path(f"/proc/{pid}/{name}").read_bytes()


@contextlib.contextmanager
def kms_key() -> Iterator[tuple[str, str]]:
    kms = boto3.client("kms")
    key_id = kms.create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    yield key_id, address_of_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"], flag="kms", key_id=key_id)


@pytest.mark.slow
@pytest.mark.parametrize("settlement_by", ["remote-signer", "kms"])
async def test_run_settles_with_no_key_in_its_environment_arguments_log_or_stores(
    tmp_path: Path, moto_kms: str, settlement_by: str
) -> None:
    pki = make_pki(tmp_path / "pki")
    keys = [SETTLEMENT_KEY, VERIFIER_KEY]
    double = RemoteSignerDouble(keys, blobs=True, headers={"Authorization": TOKEN})
    remote_address = Account.from_key(SETTLEMENT_KEY if settlement_by == "remote-signer" else VERIFIER_KEY).address
    with serving(double, tls=mutual_tls(pki)) as signer_url, kms_key() as (key_id, kms_address):
        async with (
            local_l1(tmp_path, program_hash=DEVNET_AGGREGATOR_PROGRAM_HASH) as l1,
            devnet_sequencer() as sequencer_url,
        ):
            for address in (remote_address, kms_address):
                await l1.rpc.request("anvil_setBalance", [address, hex(10**20)])
            remote = ["--signer-url", signer_url, "--signer-address", remote_address]
            kms = ["--kms-key-id", key_id]
            settlement, verifier = (remote, kms) if settlement_by == "remote-signer" else (kms, remote)
            args = [
                *("--snos-runner", "devnet", "--aggregator-runner", "devnet", "--prover", "mock"),
                *("--mock-verifier-address", l1.contracts.fact_registry),
                *(f"--mock-verifier-{flag.removeprefix('--')}" for flag in verifier[:1]),
                *verifier[1:2],
                *(f"--mock-verifier-{flag.removeprefix('--')}" for flag in verifier[2:3]),
                *verifier[3:4],
                *("--settle-on-ethereum", "--ethereum-rpc-url", l1.anvil.url),
                *(f"--ethereum-{flag.removeprefix('--')}" for flag in settlement[:1]),
                *settlement[1:2],
                *(f"--ethereum-{flag.removeprefix('--')}" for flag in settlement[2:3]),
                *settlement[3:4],
                *("--ethereum-signer-tls-ca", pki.ca_crt, "--ethereum-signer-tls-cert", pki.client_crt),
                *("--ethereum-signer-tls-key", pki.client_key),
                *("--l1-core-contract-address", l1.contracts.core_contract, "--ethereum-confirmations", "0"),
                *("--ethereum-finality-retry-wait-in-secs", "0.2", "--disable-peerdas"),
            ]
            env = {"MADARA_ORCHESTRATOR_ETHEREUM_SIGNER_HEADER": f"Authorization: {TOKEN}"}
            async with orchestrator_run(tmp_path, sequencer_url, free_port(), args, env=env) as run:
                environ, cmdline = proc_file(run.process.pid, "environ"), proc_file(run.process.pid, "cmdline")
                await wait_until_settled(l1, run, BLOCKS - 1)
                assert await jobs_by_status(run, "Failed") == []
                assert found_in(proc_file(run.process.pid, "environ")) == []
            log = run.log.read_text(errors="replace")

    assert b"AWS_ENDPOINT_URL" in environ and signer_url.encode() in cmdline, "the right process was read"
    assert found_in(environ) == [], "a key in the process's environment"
    assert found_in(cmdline) == [], "a key in the process's arguments"
    assert found_in(log.encode()) == [], "a key in the log"
    assert f"settlements are signed by {'the remote signer' if settlement_by == 'remote-signer' else 'AWS KMS'}" in log
    stored = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" or "sqlite" in p.name for p in stored), [p.name for p in stored]
    leaks = {str(p): found_in(p.read_bytes()) for p in stored}
    assert {p: k for p, k in leaks.items() if k} == {}, "a key in a stored file"
    # Both accounts signed on L1 through what holds their keys: fact registrations and settlements.
    signed = [r["params"][0]["from"] for r in double.requests if r["method"] == "eth_signTransaction"]
    assert signed and set(signed) == {remote_address}
    assert double.invalid == [] and double.refused_http == []
    assert os.environ.get("MADARA_ORCHESTRATOR_ETHEREUM_PRIVATE_KEY") is None
