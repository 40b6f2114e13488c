"""Three settlements in flight in their own process, for the kill -9 tests: with ``--crash-at POINT
--crash-key KEY`` the process SIGKILLs itself at that point of the transaction manager while sending KEY.

    python -m tests.integration.settlement.settle_many_worker --rpc-url URL --core ADDR --db FILE \\
        --batches FILE [--crash-at POINT --crash-key KEY]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from madara_orchestrator.settlement.durable import CRASH_POINTS, sending_key
from tests.helpers.kzg_memo import remember_kzg_between_runs
from tests.integration.settlement.in_flight import in_flight_client, settle_all


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rpc-url", required=True)
    parser.add_argument("--core", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--batches", required=True, help="JSON file: [{program_output: [int], blobs: [hex]}]")
    parser.add_argument("--crash-at", choices=CRASH_POINTS)
    parser.add_argument("--crash-key")
    args = parser.parse_args()
    remember_kzg_between_runs()  # the crash tests settle the same batches again and again
    batches = [
        (doc["program_output"], [bytes.fromhex(b) for b in doc["blobs"]])
        for doc in json.loads(Path(args.batches).read_text())
    ]

    def crash(point: str) -> None:
        if point == args.crash_at and sending_key() == args.crash_key:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    async def run() -> list[int | None]:
        client = in_flight_client(
            args.rpc_url, args.core, Path(args.db), os.environ["SETTLE_WORKER_PRIVATE_KEY"], crash_hook=crash
        )
        results = await settle_all(client, batches)
        await client.aclose()
        return [r.nonce for r in results]

    print(json.dumps(asyncio.run(run())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
