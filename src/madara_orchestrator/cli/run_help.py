"""How ``orchestrator run --help`` presents the options declared in cli/settings/: each flag's metavar (URL,
ADDRESS, KEY, FILE, SECONDS, N, ...: from the option's kind, choices and name, unless its declaration gives
one) and help (its text, then when it is required, or its default, or what leaving it out means, then its
variable), and a formatter that wraps them between words.
"""

from __future__ import annotations

import argparse
import re
import shutil
import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from madara_orchestrator.cli.settings.declare import Option

HELP_WIDTH = 100
"""The widest help lines get, however wide the terminal."""


_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_url", "URL"),
    ("_endpoint", "URL"),
    ("_address", "ADDRESS"),
    ("_private_key", "KEY"),
    ("_api_key", "KEY"),
    ("_secret", "SECRET"),
    ("_token", "TOKEN"),
    ("_dir", "DIR"),
    ("_file", "FILE"),
    ("_path", "FILE"),
    ("_id", "ID"),
    ("_layout_name", "LAYOUT"),
    ("_days", "DAYS"),
    ("_wei", "WEI"),
    ("_fri", "FRI"),
    ("_to_process", "BLOCK"),
)
_TIME_WORDS = ("seconds", "secs", "timeout", "duration", "interval")
_MAX_CHOICES_METAVAR = 4
"""More choices than this are listed in the help instead (the layouts)."""


def metavar(option: Option) -> str | None:
    """What the flag's value looks like; None for a switch (it takes no value)."""
    if option.kind is bool:
        return None
    if option.metavar:
        return option.metavar
    if option.choices and len(option.choices) <= _MAX_CHOICES_METAVAR:
        return "{" + ",".join(option.choices) + "}"
    for suffix, shown in _SUFFIXES:
        if option.name.endswith(suffix):
            return shown
    if option.kind in (int, float) and any(word in option.name.split("_") for word in _TIME_WORDS):
        return "SECONDS"
    if option.kind is int:
        return "N"
    if option.kind is float:
        return "NUMBER"
    return "TEXT"


def shows_default(option: Option) -> bool:
    """A default is shown unless there is none, the option is a secret, or it is a switch (off unless given)."""
    return option.default is not None and not option.secret and option.kind is not bool


def _shown(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def help_text(option: Option, env_prefix: str) -> str:
    """The option's help: what it is, when it is required or its default, its variable."""
    parts = [option.help]
    if option.choices and not (metavar(option) or "").startswith("{"):
        parts.append(f"one of: {', '.join(option.choices)}")
    text = "; ".join(p for p in parts if p)
    if option.required:
        text += f" ({option.required})"
    elif shows_default(option):
        text += f" (default: {_shown(option.default)})"
    elif option.unset:
        text += f" (default: {option.unset})"
    if option.env:
        file_form = "[_FILE]" if option.secret else ""
        text += f" [env {env_prefix}{option.env}{file_form}]"
    return text.replace("%", "%%")


_GLUED = re.compile(r"(\[env|\(default:) (\S+)")
_GLUE = "\x00"
"""Joins ``[env`` to its variable and ``(default:`` to its value while a help text is wrapped (when the two
fit on a line)."""


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, at most ``HELP_WIDTH`` wide, with room for the longer flags before their help when the
    terminal is wide enough; lines break between words only, never inside a flag (``--settle-on-|starknet``)."""

    def __init__(self, prog: str) -> None:
        width = min(HELP_WIDTH, shutil.get_terminal_size().columns - 2)
        super().__init__(prog, max_help_position=32 if width >= HELP_WIDTH else 24, width=width)

    def _split_lines(self, text: str, width: int) -> list[str]:
        def glue(match: re.Match[str]) -> str:
            joined = f"{match[1]}{_GLUE}{match[2]}"
            return joined if len(joined) <= width else match[0]

        text = _GLUED.sub(glue, " ".join(text.split()))
        lines = textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)
        return [line.replace(_GLUE, " ") for line in lines]

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        text = " ".join(text.split())
        return textwrap.fill(text, width, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False)


RUN_USAGE = "%(prog)s [-h] [OPTIONS]"
RUN_DESCRIPTION = (
    "Run the orchestrator: queue consumers, triggers and the HTTP API. Every option can also be set by its "
    "MADARA_ORCHESTRATOR_* variable (shown in [env ...]) or a .env file; a flag wins over its variable, and a "
    "secret's <VAR>_FILE names a file holding it. Switches take no value (in a variable: true or false) and are "
    "off unless given. Required: --madara-rpc-url, --prover, --snos-runner and one --settle-on-*; what else a "
    "choice requires is said at each option."
)
