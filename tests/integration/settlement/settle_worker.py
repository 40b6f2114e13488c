"""One settlement in its own process, for the crash tests: with ``--crash-at POINT`` the process SIGKILLs
itself at that point of the transaction manager (``signed``, ``sent`` or ``mined``), like a power cut.

    python -m tests.integration.settlement.settle_worker --rpc-url URL --core ADDR --db FILE \\
        --key KEY --batch FILE [--crash-at POINT] [--signer-url URL --signer-address ADDR | --kms-key-id ID]

The key is in ``SETTLE_WORKER_PRIVATE_KEY``, unless a remote signer or a KMS key signs.

Prints the result as JSON on success.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from madara_orchestrator.backends.aws_client import Aws
from madara_orchestrator.backends.tx_store import SqliteTxStore
from madara_orchestrator.interfaces import TxSigner
from madara_orchestrator.settlement.ethereum import EthereumSettlementConfig
from madara_orchestrator.settlement.kms_signer import KmsSigner
from madara_orchestrator.settlement.remote_signer import RemoteSigner, RemoteSignerConfig
from tests.helpers.kzg_memo import remember_kzg_between_runs
from tests.helpers.settlement_clients import ethereum_client


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rpc-url", required=True)
    parser.add_argument("--core", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--batch", required=True, help="JSON file: {program_output: [int], blobs: [hex]}")
    parser.add_argument("--crash-at", choices=["signed", "sent", "mined"])
    parser.add_argument("--signer-url", help="sign through this remote signer (no key in the process)")
    parser.add_argument("--signer-address")
    parser.add_argument("--kms-key-id", help="sign with this AWS KMS key (no key in the process)")
    args = parser.parse_args()
    remember_kzg_between_runs()  # the crash tests settle the same batches again and again
    private_key = os.environ.get("SETTLE_WORKER_PRIVATE_KEY")
    doc = json.loads(Path(args.batch).read_text())

    def crash(point: str) -> None:
        if point == args.crash_at:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    signed_elsewhere = bool(args.signer_url or args.kms_key_id)
    config = EthereumSettlementConfig(
        rpc_url=args.rpc_url,
        core_contract_address=args.core,
        disable_peerdas=True,
        confirmations=0,
        tx_confirmation_timeout_s=30,
        finality_retry_wait_s=0.05,
        private_key=None if signed_elsewhere else private_key,
    )

    async def run() -> dict[str, object]:
        signer: TxSigner | None = None
        if args.signer_url:
            signer = RemoteSigner(RemoteSignerConfig(url=args.signer_url, address=args.signer_address))
        elif args.kms_key_id:
            signer = await KmsSigner.open(Aws(), args.kms_key_id)
        client = ethereum_client(config, SqliteTxStore(Path(args.db)), signer=signer, crash_hook=crash)
        result = await client.update_state_with_blobs(
            doc["program_output"], [bytes.fromhex(b) for b in doc["blobs"]], idempotency_key=args.key
        )
        await client.aclose()
        return {
            "tx_hash": result.tx_hash,
            "nonce": result.nonce,
            "already_settled": result.already_settled,
            "attempts": [[a.attempt_no, a.status, a.tx_hash] for a in result.attempts],
        }

    print(json.dumps(asyncio.run(run())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
