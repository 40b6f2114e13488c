"""``orchestrator jobs list|show|retry``: job control through a running orchestrator's HTTP API."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import httpx

from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput, OrchestratorError
from madara_orchestrator.domain.jobs import JobStatus


def _default_url() -> str:
    host = os.environ.get("MADARA_ORCHESTRATOR_HOST", "127.0.0.1")
    port = os.environ.get("MADARA_ORCHESTRATOR_PORT", "3000")
    return f"http://{host}:{port}"


URL_HELP = "orchestrator API (default: http://127.0.0.1:3000, or MADARA_ORCHESTRATOR_HOST and _PORT)"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("jobs", help="list, show and retry jobs")
    parser.add_argument("--url", default=None, help=URL_HELP)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="jobs in a status, with the blocks each covers")
    listing.add_argument("--status", required=True, choices=[s.value for s in JobStatus])
    show = actions.add_parser("show", help="one job, whole")
    show.add_argument("id")
    retry = actions.add_parser("retry", help="retry a Failed job")
    retry.add_argument("id")
    retry.add_argument("--priority", action="store_true", help="through the priority queue")
    for action in (listing, show, retry):
        # Also after the action (`jobs list --url U`); SUPPRESS keeps a --url given before it.
        action.add_argument("--url", default=argparse.SUPPRESS, help=URL_HELP)
    parser.set_defaults(handler=jobs_command)


def _call(url: str) -> dict[str, Any]:
    try:
        response = httpx.get(url, timeout=30)
    except httpx.InvalidURL as exc:
        raise InvalidInput(f"--url: {exc}") from None
    except httpx.HTTPError as exc:
        raise BackendUnavailable(f"cannot reach the orchestrator at {url}: {exc}") from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise OrchestratorError(
            f"HTTP {response.status_code} from {url}: {response.text[:200]!r} is not an orchestrator API answer; "
            "check --url"
        )
    if not body.get("success"):
        raise (InvalidInput if response.status_code < 500 else OrchestratorError)(
            body.get("message") or f"HTTP {response.status_code}"
        )
    return dict(body)


def block_range(job: dict[str, Any]) -> str:
    """``blocks 10-19``, ``block 7``, or nothing when the API does not say (an older orchestrator)."""
    start, end = job.get("start_block"), job.get("end_block")
    if not isinstance(start, int) or not isinstance(end, int):
        return ""
    return f"block {start}" if start == end else f"blocks {start}-{end}"


def jobs_command(args: argparse.Namespace) -> int:
    base = (args.url or _default_url()).rstrip("/")
    if args.action == "list":
        body = _call(f"{base}/jobs?status={args.status}")
        for job in body["data"]["jobs"]:
            print(f"{job['id']}  {job['job_type']:<18} {job['status']:<22} {block_range(job)}".rstrip())
        print(body.get("message", ""))
    elif args.action == "show":
        body = _call(f"{base}/jobs/{args.id}")
        print(json.dumps(body["data"], indent=2))
    else:
        suffix = "?priority=true" if args.priority else ""
        print(_call(f"{base}/jobs/{args.id}/retry{suffix}")["message"])
    return 0
