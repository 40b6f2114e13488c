"""`orchestrator pie`: not built yet (see the open issue)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("pie", help="(not built yet)")
    parser.set_defaults(handler=lambda args: _not_built())


def _not_built() -> int:
    print("not built yet")
    return 1
