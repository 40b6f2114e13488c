"""``orchestrator jobs list|show|retry``: job control through a running orchestrator's HTTP API.

``retry`` changes a job, so it is ``POST /jobs/{id}/retry`` with the admin token (``--admin-token``, else
``MADARA_ORCHESTRATOR_ADMIN_TOKEN_FILE`` or ``MADARA_ORCHESTRATOR_ADMIN_TOKEN``), which is never printed.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput, OrchestratorError
from madara_orchestrator.domain.jobs import JobStatus
from madara_orchestrator.tls import default_tls


def _default_url() -> str:
    host = os.environ.get("MADARA_ORCHESTRATOR_HOST", "127.0.0.1")
    port = os.environ.get("MADARA_ORCHESTRATOR_PORT", "3000")
    return f"http://{host}:{port}"


URL_HELP = "orchestrator API (default: http://127.0.0.1:3000, or MADARA_ORCHESTRATOR_HOST and _PORT)"
TOKEN_VAR = "MADARA_ORCHESTRATOR_ADMIN_TOKEN"


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
    retry.add_argument(
        "--admin-token",
        default=None,
        help=f"the orchestrator's admin token (default: {TOKEN_VAR}_FILE, then {TOKEN_VAR})",
    )
    for action in (listing, show, retry):
        # Also after the action (`jobs list --url U`); SUPPRESS keeps a --url given before it.
        action.add_argument("--url", default=argparse.SUPPRESS, help=URL_HELP)
    parser.set_defaults(handler=jobs_command)


def admin_token(
    given: str | None, environ: Mapping[str, str] | None = None, *, what: str = "jobs retry changes a job and needs"
) -> str:
    """The admin token: ``given`` (``--admin-token``), else the file ``<VAR>_FILE`` names, else ``<VAR>``."""
    env = os.environ if environ is None else environ
    if given:
        return given
    file_var = TOKEN_VAR + "_FILE"
    if env.get(file_var):
        path = Path(env[file_var])
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise InvalidInput(f"{file_var}: cannot read {path}: {exc.strerror}") from None
        if not token:
            raise InvalidInput(f"{file_var}: {path} is empty")
        return token
    if env.get(TOKEN_VAR):
        return env[TOKEN_VAR]
    raise InvalidInput(f"{what} the orchestrator's admin token: pass --admin-token, or set {TOKEN_VAR} or {file_var}")


def _call(url: str, *, token: str | None = None, method: str | None = None) -> dict[str, Any]:
    """GET ``url``, or with ``token`` POST it with ``Authorization: Bearer <token>`` (``method`` says
    otherwise: an admin GET)."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    try:
        verb = method or ("GET" if token is None else "POST")
        response = httpx.request(verb, url, headers=headers, timeout=30, verify=default_tls())
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
        token = admin_token(args.admin_token)
        suffix = "?priority=true" if args.priority else ""
        print(_call(f"{base}/jobs/{args.id}/retry{suffix}", token=token)["message"])
    return 0
