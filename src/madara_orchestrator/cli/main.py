"""The ``orchestrator`` command: one module per subcommand, each with ``register(subparsers)``.

A subcommand's handler takes the parsed arguments and returns the exit code. Errors we raise on
purpose are printed as one clear message (never a traceback as the only message): exit 2 for bad
input or configuration, 1 for everything else. A reader that goes away (``orchestrator ... | head``)
ends any command quietly, with the exit code of a process killed by SIGPIPE.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import logging
import os
import re
import select
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from madara_orchestrator import ORCHESTRATOR_VERSION
from madara_orchestrator.domain.errors import ConfigError, InvalidInput, OrchestratorError
from madara_orchestrator.domain.redaction import cut_urls


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line and without the value of an option written ``--x=VALUE``
    (``ambiguous option: --eth=KEY could match ...`` would print a key). Subcommands inherit it."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"(--[A-Za-z0-9][\w-]*)=\S*", r"\1=…", message)
        message = re.sub(r"explicit argument '.*?'", "explicit argument (not shown)", message)
        self.exit(2, f"error: {self.prog}: {message}; see {self.prog} --help\n")


COMMANDS = (
    "run",
    "setup",
    "devnet",
    "devnet-chain",
    "backtest",
    "jobs",
    "admin",
    "dlq",
    "blob",
    "pie",
    "mock-atlantic",
    "cost",
)
"""The subcommands, in ``--help``'s order; each is the module ``cli/<name with _ for ->``."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``command``, one that knows only that subcommand. Importing a command's
    module can take a second or two (the devnet imports every adapter), so ``orchestrator run …`` loads
    ``cli/run.py`` alone and ``--help`` or a mistyped command loads them all."""
    parser = Parser(
        prog="orchestrator",
        description="Carries Starknet appchain blocks from produced to settled.",
    )
    parser.add_argument("--version", action="version", version=f"orchestrator {ORCHESTRATOR_VERSION}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    names = [command] if command in COMMANDS else [] if command == "--version" else COMMANDS
    for module in _command_modules(names):
        module.register(subparsers)
    return parser


def _command_modules(names: Sequence[str]) -> list[ModuleType]:
    return [importlib.import_module(f"madara_orchestrator.cli.{name.replace('-', '_')}") for name in names]


def unknown_arguments_message(parser: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str]) -> str:
    """One line naming the arguments nobody takes, never their values (one may be a key typed after a
    misspelt flag): ``--x=VALUE`` is named ``--x``, a bare value is counted, not shown. Each unknown flag
    gets the closest flag of the command, if one is close."""
    command = parser.prog
    flags: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and getattr(args, "command", None) in action.choices:
            sub = action.choices[args.command]
            command = sub.prog
            flags = [f for a in sub._actions for f in a.option_strings if f.startswith("--")]
    named: list[str] = []
    values = 0
    for extra in extras:
        if not extra.startswith("-") or extra == "-" or _is_number(extra):
            values += 1
            continue
        flag = extra.split("=", 1)[0]
        close = difflib.get_close_matches(flag, flags, n=1, cutoff=0.6)
        named.append(f"{flag} (did you mean {close[0]}?)" if close else flag)
    parts = []
    if named:
        parts.append(f"unknown option{'s' if len(named) > 1 else ''} {', '.join(named)}")
    if values:
        parts.append(f"{values} unexpected value{'s' if values > 1 else ''} (not shown)")
    return f"error: {command}: {' and '.join(parts)}; see {command} --help"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
    args, extras = parser.parse_known_args(argv)
    if extras:
        print(unknown_arguments_message(parser, args, extras), file=sys.stderr)
        return 2
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
            print(f"  - {cut_urls(problem)}", file=sys.stderr)
        return 2
    except InvalidInput as exc:
        print(f"error: {cut_urls(str(exc))}", file=sys.stderr)
        return 2
    except OrchestratorError as exc:
        print(f"error: {cut_urls(str(exc))}", file=sys.stderr)
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
