"""From the options to values: argparse flags (in the sections of ``run --help``), then each value from its
flag, ``<VAR>_FILE`` (secrets only: the file's trimmed content), ``<VAR>``, or the default, converted to the
option's type. Every problem is collected, so a bad configuration is reported in one message."""

from __future__ import annotations

import argparse
import difflib
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from madara_orchestrator.cli import run_help
from madara_orchestrator.cli.settings.declare import ENV_PREFIX, Option
from madara_orchestrator.cli.settings.model import GROUPS


def add_options(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """The options as flags in the argument groups of ``run --help``, in its order; an option of no group (one
    of ``setup`` only) stays in the parser's own. Each flag has its metavar and help from its declaration."""
    placed: list[tuple[Any, Option]] = [(parser, o) for o in options if o.group is None]
    for group in GROUPS:
        members = [option for option in options if option.group == group]
        if members:
            section = parser.add_argument_group(group.title, group.description)
            placed += [(section, option) for option in members]
    for target, option in placed:
        text = run_help.help_text(option, ENV_PREFIX)
        if option.kind is bool:
            target.add_argument(option.flag, dest=option.name, action="store_true", default=None, help=text)
        elif option.repeatable:
            target.add_argument(
                option.flag,
                dest=option.name,
                action="append",
                default=None,
                metavar=run_help.metavar(option),
                help=text,
            )
        else:
            target.add_argument(
                option.flag, dest=option.name, default=None, metavar=run_help.metavar(option), help=text
            )


def _convert(option: Option, raw: Any, source: str, problems: list[str]) -> Any:
    if raw is None:
        return None
    if option.kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no", ""):
            return False
        problems.append(f"{source}: expected true or false, got {raw!r}")
        return None
    text = "\n".join(str(r).strip() for r in raw) if isinstance(raw, list) else str(raw).strip()
    if option.kind is int or option.kind is float:
        try:
            number = option.kind(text)
        except ValueError:
            problems.append(f"{source}: expected a {'whole ' if option.kind is int else ''}number, got {text!r}")
            return None
        if not math.isfinite(number):
            problems.append(f"{source}: expected a finite number, got {text!r}")
            return None
        return number
    if option.choices and text.lower() not in option.choices:
        problems.append(f"{source}: must be one of {', '.join(option.choices)}, got {text!r}")
        return None
    return text.lower() if option.choices else text


def resolve(
    args: argparse.Namespace, options: Sequence[Option], environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    values, problems, _ = resolve_checked(args, options, environ)
    return values, problems


def _raw_value(
    args: argparse.Namespace, option: Option, env: Mapping[str, str], problems: list[str]
) -> tuple[Any, str, bool]:
    """The option's raw value, where it came from, and whether a value was given that cannot be used."""
    raw = getattr(args, option.name, None)
    if raw is not None or not option.env:
        return raw, option.flag, False
    var = ENV_PREFIX + option.env
    file_var = var + "_FILE"
    if option.secret and env.get(file_var):
        path = Path(env[file_var])
        try:
            text = path.read_text().strip()
        except OSError as exc:
            problems.append(f"{file_var}: cannot read {path}: {exc.strerror}")
            return None, file_var, True
        if not text:
            problems.append(f"{file_var}: {path} is empty")
            return None, file_var, True
        return text, file_var, False
    if env.get(var) is not None:
        return env[var], var, False
    return None, option.flag, False


def resolve_checked(
    args: argparse.Namespace, options: Sequence[Option], environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], list[str], set[str]]:
    """The values, the problems, and the names of the options given a value that could not be used (their
    default stands in, and no other problem, such as "is required", is reported about them)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    invalid: set[str] = set()
    for option in options:
        raw, source, is_unusable = _raw_value(args, option, env, problems)
        value = _convert(option, raw, source, problems)
        if is_unusable or (value is None and raw is not None):
            invalid.add(option.name)
        values[option.name] = option.default if value is None else value
    return values, problems, invalid


def unknown_variables(environ: Mapping[str, str], options: Sequence[Option], *, also: Sequence[str] = ()) -> list[str]:
    """One warning per ``MADARA_ORCHESTRATOR_*`` variable that no option of ``options`` reads (nor ``also``:
    names, without the prefix, that other commands read), naming the closest known variable. Values are
    never shown."""
    plain = {o.env for o in options if o.env}
    known = plain | {o.env + "_FILE" for o in options if o.env and o.secret} | set(also)
    warnings: list[str] = []
    for variable in sorted(environ):
        name = variable.removeprefix(ENV_PREFIX)
        if not variable.startswith(ENV_PREFIX) or name in known:
            continue
        if name.endswith("_FILE") and name.removesuffix("_FILE") in plain:
            warnings.append(
                f"{variable} is ignored: only secrets are read from a file; set "
                f"{ENV_PREFIX}{name.removesuffix('_FILE')} instead"
            )
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean {ENV_PREFIX}{close[0]}?" if close else "no setting has this name"
        warnings.append(f"unknown variable {variable} is ignored: {hint}")
    return warnings
