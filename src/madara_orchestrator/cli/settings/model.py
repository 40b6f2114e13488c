"""``Settings``: every group of settings fields in one frozen object, in the order of ``run --help``'s
sections; ``RUN_OPTIONS`` is its fields read back as options."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from madara_orchestrator.cli.settings.declare import Group, Option, SettingsGroup, group_options
from madara_orchestrator.cli.settings.formats import parse_da_public_keys
from madara_orchestrator.cli.settings.proving import (
    AggregatorSettings,
    AtlanticSettings,
    BatchingSettings,
    ChainSettings,
    ProverSettings,
    SharpSettings,
    SnosSettings,
)
from madara_orchestrator.cli.settings.running import (
    ApiSettings,
    BackendSettings,
    EthereumSettings,
    JobSettings,
    SettlementSettings,
    StarknetSettings,
    TelemetrySettings,
)
from madara_orchestrator.domain.errors import ConfigError
from madara_orchestrator.domain.redaction import SecretMask, cut_urls


@dataclass(frozen=True, init=False)
class Settings(
    ChainSettings,
    ProverSettings,
    AtlanticSettings,
    SharpSettings,
    SnosSettings,
    AggregatorSettings,
    BatchingSettings,
    SettlementSettings,
    EthereumSettings,
    StarknetSettings,
    JobSettings,
    BackendSettings,
    ApiSettings,
    TelemetrySettings,
):
    """The resolved ``run`` settings: one typed attribute per option (its group's field). ``run --help`` shows
    the groups in the order of these bases."""

    secrets: frozenset[str] = frozenset()
    """The settings whose values are masked: every secret one when loaded (``load_run_settings``); none in
    settings made in code (the devnet's keys are the well-known dev keys)."""

    def __init__(self, values: Mapping[str, Any] = MappingProxyType({}), secrets: Iterable[str] = ()) -> None:
        """Each setting from ``values`` by name; one not given keeps its declared default."""
        unknown = sorted(values.keys() - _NAMES)
        if unknown:
            raise TypeError(f"not settings: {', '.join(unknown)}")
        for option in RUN_OPTIONS:
            object.__setattr__(self, option.name, values.get(option.name, option.default))
        object.__setattr__(self, "secrets", frozenset(secrets))

    @property
    def values(self) -> dict[str, Any]:
        """The settings by name, in the order of ``RUN_OPTIONS``."""
        return {option.name: getattr(self, option.name) for option in RUN_OPTIONS}

    def need(self, name: str) -> str:
        """A text option this configuration requires (``load_run_settings`` has checked it is set)."""
        value = getattr(self, name)
        if value is None:
            raise ConfigError([f"--{name.replace('_', '-')} is required with these settings"])
        return str(value)

    def describe(self) -> dict[str, Any]:
        """The settings as shown to people: secrets masked, URLs cut to ``scheme://host[:port]``."""
        return {
            k: "***" if k in self.secrets and v is not None else cut_urls(v) if isinstance(v, str) else v
            for k, v in self.values.items()
        }

    @property
    def settlements_in_flight(self) -> int:
        """``--max-settlements-in-flight``, else 4 on Ethereum and 1 on Starknet: several pending invokes of one
        account have been tried only on this project's Starknet double, whose nonce rule may differ from a
        real node's (a node refusing a future nonce would make the jobs churn)."""
        if self.max_settlements_in_flight is not None:
            return int(self.max_settlements_in_flight)
        return 1 if self.settle_on_starknet else 4

    @property
    def da_keys(self) -> tuple[int, ...]:
        """``--da-public-keys`` as felts (validated by ``load_run_settings``); () when not given."""
        return parse_da_public_keys(self.da_public_keys)

    def secret_mask(self) -> SecretMask:
        """What output must never show: every secret setting's value, and the credentials, query values and
        long path segments of every URL setting (an RPC URL may carry a key)."""
        return SecretMask(
            str(v) for k, v in self.values.items() if isinstance(v, str) and (k in self.secrets or "://" in v)
        )


_GROUP_CLASSES: tuple[type[SettingsGroup], ...] = tuple(
    cls for cls in Settings.__mro__ if issubclass(cls, SettingsGroup) and "GROUP" in cls.__dict__
)
GROUPS: tuple[Group, ...] = tuple(cls.GROUP for cls in _GROUP_CLASSES)
"""The sections of ``run --help``, in order."""
RUN_OPTIONS: tuple[Option, ...] = tuple(option for cls in _GROUP_CLASSES for option in group_options(cls))
"""Every option of ``run``, group by group."""
RUN_NUMBER_RULES: dict[str, str] = {o.name: o.rule for o in RUN_OPTIONS if o.rule is not None}
"""The range of every number option of ``run``."""
SECRETS = frozenset(o.name for o in RUN_OPTIONS if o.secret)
_NAMES = frozenset(o.name for o in RUN_OPTIONS)
_BY_NAME = {o.name: o for o in RUN_OPTIONS}


def option_named(name: str) -> Option:
    return _BY_NAME[name]
