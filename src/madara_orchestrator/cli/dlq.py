"""``orchestrator dlq list|show|redrive``: the dead letters, through a running orchestrator's HTTP API.

Through the API, as ``orchestrator jobs``: redrive changes jobs, and the running orchestrator is the one
that changes jobs (its job service, under its leases and with its metrics and alerts); the command needs
no database or AWS settings, only ``--url`` and the admin token (``--admin-token``, else
``MADARA_ORCHESTRATOR_ADMIN_TOKEN_FILE`` or ``MADARA_ORCHESTRATOR_ADMIN_TOKEN``), which is never printed.
Every ``/admin/dlq`` route needs it, so ``list`` and ``show`` do too.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from madara_orchestrator.cli.jobs import TOKEN_VAR, URL_HELP, _call, _default_url, admin_token
from madara_orchestrator.domain.errors import InvalidInput


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dlq", help="dead letters: list, show and redrive them to their queues"
    )
    parser.add_argument("--url", default=None, help=URL_HELP)
    parser.add_argument(
        "--admin-token", default=None, help=f"admin token (default: {TOKEN_VAR}_FILE, then {TOKEN_VAR})"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="the dead letters by source queue")
    show = actions.add_parser("show", help="one dead letter, whole (by job id or message id)")
    show.add_argument("id")
    redrive = actions.add_parser("redrive", help="send dead letters back to their queues (one, or --all)")
    redrive.add_argument("id", nargs="?", help="job id or message id")
    redrive.add_argument("--all", action="store_true", help="every dead letter")
    for action in (listing, show, redrive):
        # Also after the action; SUPPRESS keeps a value given before it.
        action.add_argument("--url", default=argparse.SUPPRESS, help=URL_HELP)
        action.add_argument("--admin-token", default=argparse.SUPPRESS, help="admin token")
    parser.set_defaults(handler=dlq_command)


def _when(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print_list(data: dict[str, Any]) -> None:
    for queue in data["queues"]:
        print(f"{queue['queue']}: {queue['count']}")
        for m in queue["messages"]:
            print(
                f"  {m['message_id']}  job {m['job_id']} {m['job_type']} #{m['internal_id']}  "
                f"receives {m['receive_count']}  first {_when(m['first_receive_at'])}  "
                f"last {_when(m['last_receive_at'])}  dead-lettered {_when(m['dead_lettered_at'])}"
            )
            if m.get("reason"):
                print(f"    why: {m['reason']}")


def dlq_command(args: argparse.Namespace) -> int:
    base = (args.url or _default_url()).rstrip("/")
    token = admin_token(args.admin_token, what="orchestrator dlq needs")
    if args.action == "list":
        body = _call(f"{base}/admin/dlq", token=token, method="GET")
        _print_list(body["data"])
        print(body.get("message", ""))
    elif args.action == "show":
        body = _call(f"{base}/admin/dlq/{args.id}", token=token, method="GET")
        print(json.dumps(body["data"], indent=2))
    else:
        if bool(args.id) == bool(args.all):
            raise InvalidInput("dlq redrive: give one id (job or message), or --all")
        url = f"{base}/admin/dlq/redrive" if args.all else f"{base}/admin/dlq/{args.id}/redrive"
        body = _call(url, token=token)
        if args.all:
            for result in body["data"]["results"]:
                print(f"{result['job_id']}  {result['note']}")
        print(body["message"])
    return 0
