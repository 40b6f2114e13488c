"""The checks every part of the validation uses: how a problem names an option, required options, URLs,
addresses and keys, number ranges, the batching limits and the backend choice."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from madara_orchestrator.cli.settings.declare import BATCHING, ENV_PREFIX, NON_NEGATIVE, PORT, POSITIVE
from madara_orchestrator.cli.settings.formats import is_hex_address, private_key_body
from madara_orchestrator.cli.settings.model import option_named
from madara_orchestrator.domain.batches import DEFAULT_BOUNCER_WEIGHT_LIMITS, BouncerWeights
from madara_orchestrator.domain.batching import BatchLimits
from madara_orchestrator.domain.chain import MAX_BLOBS_PER_TXN
from madara_orchestrator.domain.errors import InvalidInput


def flag(name: str) -> str:
    return option_named(name).flag


def named(name: str) -> str:
    """``--flag (MADARA_ORCHESTRATOR_VAR)``, how a problem names an option."""
    option = option_named(name)
    return f"{option.flag} ({ENV_PREFIX}{option.env})" if option.env else option.flag


def required(values: Mapping[str, Any], names: Sequence[str], context: str) -> list[str]:
    return [f"{named(name)} is required {context}" for name in names if not values[name]]


def url_problem(values: Mapping[str, Any], name: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
    """An absolute URL with one of ``schemes`` and a host. A secret URL (it may carry a key) is not echoed."""
    value = values[name]
    if not value:
        return None
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a bad port
        is_valid = parts.scheme.lower() in schemes and bool(parts.hostname)
    except ValueError:
        is_valid = False
    if is_valid:
        return None
    shown = "" if option_named(name).secret else f", got {value!r}"
    expected = " or ".join(f"{s}://" for s in schemes)
    return f"{flag(name)} must be an {expected} URL with a host{shown}"


def address_problem(values: Mapping[str, Any], name: str, *, why: str = "") -> str | None:
    value = values[name]
    if value is None or is_hex_address(value, length=40):
        return None
    return f"{flag(name)} must be a 20-byte address (0x and 40 hex digits){why}, got {value!r}"


def private_key_problem(values: Mapping[str, Any], name: str) -> str | None:
    value = values[name]
    if value is None or private_key_body(value) is not None:
        return None
    return f"{named(name)} must be a private key: 32 bytes as 64 hex digits (0x optional), not zero"


def number_problems(values: Mapping[str, Any], rules: Mapping[str, str]) -> list[str]:
    """One line per number outside its range, naming the flag."""
    problems: list[str] = []
    for name, rule in rules.items():
        value = values.get(name)
        if value is None or rule == BATCHING:
            continue
        flag = "--" + name.replace("_", "-")
        if rule == POSITIVE and value <= 0:
            kind = "a positive integer" if isinstance(value, int) else "positive"
            problems.append(f"{flag} must be {kind}, got {value}")
        elif rule == NON_NEGATIVE and value < 0:
            problems.append(f"{flag} must be 0 or more, got {value}")
        elif rule == PORT and not 0 <= value < 65536:
            problems.append(f"{flag} must be between 0 and 65535 (0: any free port), got {value}")
    return problems


def backend_problems(values: Mapping[str, Any]) -> list[str]:
    """The backend choice: ``--aws-*`` need ``--aws`` and ``--aws`` needs one of them; a PostgreSQL URL."""
    problems: list[str] = []
    chosen = [flag for flag in ("aws_s3", "aws_sqs", "aws_sns") if values.get(flag)]
    if chosen and not values.get("aws"):
        flags = ", ".join("--" + f.replace("_", "-") for f in chosen)
        verb = "needs" if len(chosen) == 1 else "need"
        problems.append(f"{flags} {verb} --aws (credentials and region come from the standard AWS_* variables)")
    if values.get("aws") and not chosen:
        problems.append("--aws chooses nothing by itself: add --aws-s3, --aws-sqs and/or --aws-sns")
    problems += postgres_url_problems(values)
    return problems


def postgres_url_problems(values: Mapping[str, Any]) -> list[str]:
    """``--postgres-url``, when given, must be a PostgreSQL URL."""
    url = values.get("postgres_url")
    if url is not None and not str(url).startswith(("postgresql://", "postgres://")):
        return ["--postgres-url must be a postgresql://user:password@host:port/database URL"]
    return []


def load_bouncer_weight_limits(path: str | None) -> BouncerWeights:
    """The limits file of ``--bouncer-weights-limit-file``; a bad file is an error, not silent defaults."""
    if path is None:
        return DEFAULT_BOUNCER_WEIGHT_LIMITS
    where = f"--bouncer-weights-limit-file {path}"
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidInput(f"{where}: cannot read it: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{where}: not JSON ({exc})") from None
    return BouncerWeights.from_json(data, where=where, defaults=DEFAULT_BOUNCER_WEIGHT_LIMITS)


def batch_limits(values: Mapping[str, Any], weights: BouncerWeights = DEFAULT_BOUNCER_WEIGHT_LIMITS) -> BatchLimits:
    return BatchLimits(
        max_batch_time_s=float(values["max_batch_time_seconds"]),
        max_blocks_per_snos_batch=values["max_blocks_per_snos_batch"],
        fixed_blocks_per_snos_batch=values["fixed_blocks_per_snos_batch"],
        max_batch_size=values["max_batch_size"],
        max_snos_batches_per_aggregator_batch=values["max_snos_batches_per_aggregator_batch"],
        max_num_blobs=values["max_num_blobs"],
        blob_size_buffer=values["blob_size_buffer"],
        max_aggregator_input_size=values["max_aggregator_input_size"],
        default_empty_block_proving_gas=values["default_empty_block_proving_gas"],
        bouncer_weight_limits=weights,
    )


_LIMIT_FLAGS = {
    "max batch time": "--max-batch-time-seconds",
    "max blocks per SNOS batch": "--max-blocks-per-snos-batch",
    "max batch size": "--max-batch-size",
    "max SNOS batches per aggregator batch": "--max-snos-batches-per-aggregator-batch",
    "max number of blobs": "--max-num-blobs",
    "max aggregator input size": "--max-aggregator-input-size",
    "fixed blocks per SNOS batch": "--fixed-blocks-per-snos-batch",
    "blob size buffer": "--blob-size-buffer",
    "default empty block proving gas": "--default-empty-block-proving-gas",
}


def _batching_flag(problem: str) -> str:
    """The flag a batching-limit problem is about (the policy names the limit, the user typed the flag)."""
    return next((flag for name, flag in _LIMIT_FLAGS.items() if problem.startswith(name)), "batching")


def batching_problems(values: Mapping[str, Any]) -> list[str]:
    names = (
        "max_batch_time_seconds",
        "max_batch_size",
        "max_num_blobs",
        "blob_size_buffer",
        "max_blocks_per_snos_batch",
        "max_snos_batches_per_aggregator_batch",
        "max_aggregator_input_size",
        "default_empty_block_proving_gas",
    )
    if any(values[n] is None for n in names):
        return []  # already reported as not a number
    problems: list[str] = []
    try:
        weights = load_bouncer_weight_limits(values["bouncer_weights_limit_file"])
    except InvalidInput as exc:
        problems.append(str(exc))
        weights = DEFAULT_BOUNCER_WEIGHT_LIMITS
    problems += [f"{_batching_flag(p)}: {p}" for p in batch_limits(values, weights).problems()]
    blobs = values["max_num_blobs"]
    if blobs > MAX_BLOBS_PER_TXN:
        problems.append(f"--max-num-blobs must be at most {MAX_BLOBS_PER_TXN} (blobs per transaction), got {blobs}")
    return problems
