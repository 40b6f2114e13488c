"""The ``orchestrator`` command: one module per subcommand, each with ``register(subparsers)``.

A subcommand's handler takes the parsed arguments and returns the exit code. Errors we raise on
purpose are printed as one clear message (never a traceback as the only message): exit 2 for bad
input or configuration, 1 for everything else. A reader that goes away (``orchestrator ... | head``)
ends any command quietly, with the exit code of a process killed by SIGPIPE.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import sys
from collections.abc import Sequence
from types import ModuleType

from madara_orchestrator import ORCHESTRATOR_VERSION
from madara_orchestrator.cli import blob, devnet, devnet_chain, jobs, mock_atlantic, pie, run, setup
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
    return [run, setup, devnet, devnet_chain, jobs, blob, pie, mock_atlantic]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = args.handler(args)
        sys.stdout.flush()  # here, so that a closed stdout is reported below and not at interpreter exit
    except BrokenPipeError:
        if not _stdout_is_closed():
            print("error: a pipe closed while writing (broken pipe)", file=sys.stderr)
            return 1
        return _quiet_exit_on_closed_stdout()
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


SIGPIPE_EXIT = 128 + 13
"""What a shell reports for a process killed by SIGPIPE, as ``cat big | head`` does for cat."""


def _stdout_is_closed() -> bool:
    """Whether nobody reads our stdout any more (``| head`` has exited): writing to a pipe with no reader
    fails, and polling its write end reports an error."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return True  # no usable stdout at all


def _quiet_exit_on_closed_stdout() -> int:
    """Point stdout at /dev/null, so the interpreter's last flush of what is still buffered cannot fail."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return SIGPIPE_EXIT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
