"""One Starknet settlement in its own process, for the crash tests: with ``--crash-at POINT`` the process
SIGKILLs itself at that point of the client (``signed``, ``sent`` or ``mined``), like a power cut.

    python -m tests.integration.settlement.starknet_settle_worker --rpc-url URL --account ADDR --core ADDR \\
        --db FILE --key KEY --batch FILE [--crash-at POINT]

The account's private key comes from ``STARKNET_SETTLE_WORKER_PRIVATE_KEY``. Prints the result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from madara_orchestrator.backends.tx_store import SqliteTxStore
from madara_orchestrator.settlement.durable import CRASH_POINTS
from madara_orchestrator.settlement.starknet import StarknetSettlementConfig, starknet_json_rpc
from tests.helpers.settlement_clients import starknet_client


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rpc-url", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--core", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--batch", required=True, help="JSON file: {snos_output: [int], program_output: [int]}")
    parser.add_argument("--crash-at", choices=CRASH_POINTS)
    args = parser.parse_args()
    doc = json.loads(Path(args.batch).read_text())

    def crash(point: str) -> None:
        if point == args.crash_at:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    config = StarknetSettlementConfig(
        rpc_url=args.rpc_url,
        account_address=args.account,
        private_key=os.environ["STARKNET_SETTLE_WORKER_PRIVATE_KEY"],
        core_contract_address=args.core,
        finality_retry_wait_s=0.02,
        confirmation_timeout_s=30.0,
    )

    async def run() -> dict[str, object]:
        store = SqliteTxStore(args.db)
        rpc = starknet_json_rpc(config.rpc_url, timeout_s=config.rpc_timeout_s)
        client = starknet_client(config, rpc, store, crash_hook=crash)
        try:
            result = await client.update_state_calldata(
                doc["snos_output"], doc["program_output"], idempotency_key=args.key
            )
        finally:
            await client.aclose()
            store.close()
        return {
            "tx_hash": result.tx_hash,
            "nonce": result.nonce,
            "already_settled": result.already_settled,
            "fee_paid": result.fee_paid_wei,
            "attempts": [[a.attempt_no, a.status, a.tx_hash] for a in result.attempts],
        }

    print(json.dumps(asyncio.run(run())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
