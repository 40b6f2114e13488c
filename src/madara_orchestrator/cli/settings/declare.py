"""How a setting is declared: a dataclass field whose type is the setting's type and whose ``setting(...)``
metadata says the rest (variable, help, secrecy, choices, number range, and how ``run --help`` shows it).
``Option`` is that declaration read back, one per field, for argparse, loading and validation."""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

ENV_PREFIX = "MADARA_ORCHESTRATOR_"

POSITIVE = "positive"
NON_NEGATIVE = "non-negative"
PORT = "port"
BATCHING = "batching"
"""Checked with the batching limits (``BatchLimits.problems``), in the batching policy's words."""
NUMBER_RULES = (POSITIVE, NON_NEGATIVE, PORT, BATCHING)


@dataclass(frozen=True, slots=True)
class Group:
    """A section of ``run --help``: its title and one-line description."""

    title: str
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Option:
    """One setting: its long flag (from ``name``), its ``MADARA_ORCHESTRATOR_*`` variable (``env``), its type
    (``kind``), default and help; ``secret`` ones may come from ``<VAR>_FILE`` and are never printed.
    ``rule`` is a number's range; ``metavar``, ``required``, ``unset`` and ``group`` are for ``run --help``."""

    name: str
    env: str | None
    kind: type = str
    default: Any = None
    help: str = ""
    secret: bool = False
    choices: tuple[str, ...] = ()
    rule: str | None = None
    metavar: str | None = None
    """What the value looks like, where the rule of ``run_help.metavar`` is wrong or too vague."""
    required: str | None = None
    """When the option must be given, as validation enforces it; shown at the end of its help."""
    unset: str | None = None
    """What leaving out an option without a default means (when its help does not say), shown as its default."""
    group: Group | None = None
    repeatable: bool = False
    """A flag given several times (its values joined by newlines; the variable holds them one a line)."""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


_OPTION = "option"


def setting(
    env: str | None,
    help: str,
    *,
    default: Any = None,
    secret: bool = False,
    choices: tuple[str, ...] = (),
    rule: str | None = None,
    metavar: str | None = None,
    required: str | None = None,
    unset: str | None = None,
    repeatable: bool = False,
) -> Any:
    """A settings field: ``name: type = setting("VAR", "help", ...)``; the name and the type come from the field."""
    facts = {"env": env, "help": help, "secret": secret, "choices": choices, "rule": rule}
    facts |= {"metavar": metavar, "required": required, "unset": unset, "repeatable": repeatable}
    return field(default=default, metadata={_OPTION: facts})


class SettingsGroup:
    """Base of a group of settings fields: ``GROUP`` is its section of ``run --help``."""

    GROUP: ClassVar[Group]


def _kind(annotation: Any) -> tuple[type, bool]:
    """``int | None`` → ``(int, True)``: the one type a value of the field has when it is set, and whether it
    may be unset."""
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(kinds) == 1 and isinstance(kinds[0], type):
            return kinds[0], True
    if isinstance(annotation, type):
        return annotation, False
    raise TypeError(f"a setting is of one plain type (optionally | None), not {annotation!r}")


def group_options(cls: type[SettingsGroup]) -> tuple[Option, ...]:
    """The options a group class declares itself, in their order, each of its group. A number needs its range,
    and a setting without a default is ``| None`` (one with a default is not)."""
    hints = typing.get_type_hints(cls)
    own = inspect.get_annotations(cls)
    options: list[Option] = []
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        if spec.name not in own:
            continue
        kind, is_optional = _kind(hints[spec.name])
        option = Option(name=spec.name, kind=kind, default=spec.default, group=cls.GROUP, **spec.metadata[_OPTION])
        if option.kind in (int, float) and option.rule not in NUMBER_RULES:
            raise TypeError(f"{option.flag}: a number setting needs its range (rule=POSITIVE, NON_NEGATIVE, ...)")
        if is_optional != (option.default is None):
            raise TypeError(f"{option.flag}: a setting is `| None` exactly when it has no default")
        options.append(option)
    return tuple(options)
