"""The ``orchestrator`` command: one module per subcommand, each with ``register(subparsers)``.

A subcommand's handler takes the parsed arguments and returns the exit code. Errors we raise on
purpose are printed as one clear message (never a traceback as the only message): exit 2 for bad
input or configuration, 1 for everything else.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from madara_orchestrator import ORCHESTRATOR_VERSION
from madara_orchestrator.cli import blob, devnet, jobs, mock_atlantic, pie, run, setup
from madara_orchestrator.domain.errors import ConfigError, InvalidInput, OrchestratorError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Carries Starknet appchain blocks from produced to settled.",
    )
    parser.add_argument("--version", action="version", version=f"orchestrator {ORCHESTRATOR_VERSION}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in _command_modules():
        module.register(subparsers)
    return parser


def _command_modules() -> list[ModuleType]:
    return [run, setup, devnet, jobs, blob, pie, mock_atlantic]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = args.handler(args)
    except ConfigError as exc:
        print("error: invalid configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OrchestratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
