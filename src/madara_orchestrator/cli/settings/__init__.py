"""Settings for ``orchestrator run`` (SPEC §16), each declared once as a typed field of ``Settings`` whose
``setting(...)`` metadata gives its ``MADARA_ORCHESTRATOR_*`` variable, help, secrecy, choices, number range
and how ``run --help`` shows it; the long flag is the field's name. From that one declaration come the flags
(argparse), the values (flag, then ``<VAR>_FILE`` for secrets, then ``<VAR>``, then the default) and the
validation, and secrets are never printed (``Settings.describe()`` masks them).

- ``declare``: ``setting()``, ``Option`` (a declaration read back), ``Group``, the number ranges.
- ``proving``, ``running``: the fields, group by group.
- ``model``: ``Settings`` (all groups, in the order of ``run --help``) and ``RUN_OPTIONS``.
- ``loading``: flags, values from flags and variables, unknown variables.
- ``formats``, ``checks``, ``prover_checks``, ``validation``: ``load_run_settings`` and its checks.
"""

from madara_orchestrator.cli.settings.checks import (
    backend_problems,
    batch_limits,
    load_bouncer_weight_limits,
    number_problems,
    postgres_url_problems,
)
from madara_orchestrator.cli.settings.declare import (
    BATCHING,
    ENV_PREFIX,
    NON_NEGATIVE,
    PORT,
    POSITIVE,
    Group,
    Option,
    setting,
)
from madara_orchestrator.cli.settings.formats import parse_da_public_keys
from madara_orchestrator.cli.settings.loading import add_options, resolve, unknown_variables
from madara_orchestrator.cli.settings.model import GROUPS, RUN_NUMBER_RULES, RUN_OPTIONS, Settings
from madara_orchestrator.cli.settings.prover_checks import DEVNET_PROVER_ON_ETHEREUM
from madara_orchestrator.cli.settings.proving import (
    AGGREGATOR_RUNNERS,
    LAYOUTS,
    MOCK_ATLANTIC_PORT,
    PROVERS,
    SETTLEMENT_LAYERS,
    SNOS_RUNNERS,
)
from madara_orchestrator.cli.settings.validation import WEBHOOK_SECRET, load_run_settings

__all__ = [
    "AGGREGATOR_RUNNERS",
    "BATCHING",
    "DEVNET_PROVER_ON_ETHEREUM",
    "ENV_PREFIX",
    "GROUPS",
    "LAYOUTS",
    "MOCK_ATLANTIC_PORT",
    "NON_NEGATIVE",
    "PORT",
    "POSITIVE",
    "PROVERS",
    "RUN_NUMBER_RULES",
    "RUN_OPTIONS",
    "SETTLEMENT_LAYERS",
    "SNOS_RUNNERS",
    "WEBHOOK_SECRET",
    "Group",
    "Option",
    "Settings",
    "add_options",
    "backend_problems",
    "batch_limits",
    "load_bouncer_weight_limits",
    "load_run_settings",
    "number_problems",
    "parse_da_public_keys",
    "postgres_url_problems",
    "resolve",
    "setting",
    "unknown_variables",
]
