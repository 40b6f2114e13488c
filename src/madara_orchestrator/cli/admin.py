"""``orchestrator admin pause|resume <batching|proving|settlement>`` and ``admin pauses``: pausing a stage
of every instance through a running orchestrator's HTTP API (``POST /pause/{stage}``, ``POST
/resume/{stage}``, ``GET /pauses``; engine/pause.py says what a pause holds back).

Pausing and resuming take the admin token as ``jobs retry`` does (``--admin-token``, else
``MADARA_ORCHESTRATOR_ADMIN_TOKEN_FILE`` or ``MADARA_ORCHESTRATOR_ADMIN_TOKEN``), never printed. ``--by``
names who acts (default: user@host of this shell), kept with the pause and shown by /health and the dashboard.
"""

from __future__ import annotations

import argparse
import getpass
import os
import socket
from typing import Any
from urllib.parse import quote, urlencode

from madara_orchestrator.cli.jobs import TOKEN_VAR, URL_HELP, _call, _default_url, admin_token
from madara_orchestrator.domain.pause import Stage


def default_by() -> str:
    """Who runs this command: ``user@host``."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = os.environ.get("USER", "operator")
    return f"{user}@{socket.gethostname()}"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "admin", help="pause and resume batching, proving or settlement on every instance"
    )
    parser.add_argument("--url", default=None, help=URL_HELP)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    pause = actions.add_parser("pause", help="pause a stage on every instance (stored: restarts honour it)")
    resume = actions.add_parser("resume", help="resume a paused stage")
    listing = actions.add_parser("pauses", help="what is paused, by whom, since when")
    for action in (pause, resume):
        action.add_argument("stage", choices=[s.value for s in Stage])
        action.add_argument("--by", default=None, help="who acts (default: user@host)")
        action.add_argument(
            "--admin-token",
            default=None,
            help=f"the orchestrator's admin token (default: {TOKEN_VAR}_FILE, then {TOKEN_VAR})",
        )
    pause.add_argument("--reason", default=None, help="why (one line; shown by /health and the dashboard)")
    for action in (pause, resume, listing):
        action.add_argument("--url", default=argparse.SUPPRESS, help=URL_HELP)
    parser.set_defaults(handler=admin_command)


def admin_command(args: argparse.Namespace) -> int:
    base = (args.url or _default_url()).rstrip("/")
    if args.action == "pauses":
        print(_call(f"{base}/pauses")["message"])
        return 0
    token = admin_token(args.admin_token, what=f"admin {args.action} changes what every instance does and needs")
    query: dict[str, str] = {"by": args.by or default_by()}
    if args.action == "pause" and args.reason:
        query["reason"] = args.reason
    url = f"{base}/{args.action}/{quote(args.stage)}?{urlencode(query)}"
    print(_call(url, token=token)["message"])
    return 0
