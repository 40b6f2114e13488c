"""`orchestrator mock-atlantic`: a local server speaking the Atlantic REST subset (SPEC §7.5).

Point the orchestrator at it with ``--atlantic-service-url http://HOST:PORT`` and
``--atlantic-artifacts-base-url http://HOST:PORT/artifacts``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from madara_orchestrator.domain.errors import InvalidInput


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "mock-atlantic",
        help="run a mock Atlantic prover API (queries, buckets, artifacts, webhooks)",
        description="A local stand-in for the Atlantic prover API: queries complete after --processing-s with "
        "the real fact of the submitted PIE; artifacts are served under /artifacts.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4001, help="port to bind (default 4001)")
    parser.add_argument("--latency-s", type=float, default=0.0, help="delay added to every API answer")
    parser.add_argument(
        "--failure-rate", type=float, default=0.0, help="share of API requests answered HTTP 503 (0..1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the failure draws (same seed, same failures)")
    parser.add_argument("--webhook-url", default=None, help="POST a completion webhook here when a query ends")
    parser.add_argument(
        "--webhook-secret",
        default=None,
        help="sign each webhook with this secret (X-Atlantic-Signature: sha256=<HMAC-SHA256 of the body>), the "
        "orchestrator's --atlantic-webhook-secret (default: MADARA_ORCHESTRATOR_ATLANTIC_WEBHOOK_SECRET)",
    )
    parser.add_argument("--processing-s", type=float, default=0.5, help="seconds from submission to DONE")
    parser.add_argument("--api-key", default=None, help="require this api-key header (default: any non-empty key)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from madara_orchestrator.devnet.mock_atlantic import MockAtlanticConfig, serve

    if not 0 < args.port < 65536:
        raise InvalidInput(f"--port {args.port} is not a TCP port")
    config = MockAtlanticConfig(
        latency_s=args.latency_s,
        failure_rate=args.failure_rate,
        seed=args.seed,
        processing_s=args.processing_s,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret or os.environ.get("MADARA_ORCHESTRATOR_ATLANTIC_WEBHOOK_SECRET") or None,
        api_key=args.api_key,
    )
    print(
        f"mock Atlantic on http://{args.host}:{args.port} (artifacts: http://{args.host}:{args.port}/artifacts)",
        flush=True,
    )
    serve(config, host=args.host, port=args.port)
    return 0
