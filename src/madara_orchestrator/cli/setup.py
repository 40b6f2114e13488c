"""``orchestrator setup``: create what the backends need, idempotently.

Without ``--aws``: the embedded database and object store. With ``--aws`` (SPEC §16.4, §18): the S3 bucket
and its lifecycle rule, the layer's SQS queues, the SNS topic and the EventBridge rules or schedules of the
layer's triggers, as chosen with ``--aws-s3``, ``--aws-sqs``, ``--aws-sns`` and ``--aws-event-bridge``.
Credentials, region and endpoint come from the standard AWS variables and profiles (``AWS_REGION``,
``AWS_ENDPOINT_URL`` for LocalStack or moto, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from madara_orchestrator.backends.aws_names import EventBridgeType
from madara_orchestrator.cli import run_help
from madara_orchestrator.cli.settings import RUN_OPTIONS, Option, add_options, postgres_url_problems, resolve
from madara_orchestrator.cli.settings.running import LEASE_OPTIONS
from madara_orchestrator.domain.errors import ConfigError
from madara_orchestrator.domain.jobs import DEFAULT_POLICIES
from madara_orchestrator.domain.queues import Layer

if TYPE_CHECKING:
    from madara_orchestrator.backends.aws_setup import AwsSetupConfig

_SHARED = (
    "data_dir",
    "sqlite_path",
    "postgres_url",
    "storage_dir",
    "layer",
    "aws",
    "aws_s3",
    "aws_sqs",
    "aws_sns",
    "aws_prefix",
    "bucket_identifier",
    "storage_expiration_days",
    "queue_identifier",
    "topic_identifier",
    "interval_seconds",
    *LEASE_OPTIONS.values(),
)
"""Options ``run`` has too (same flags and variables): the queues' visibility timeouts follow the leases."""

SETUP_ONLY_OPTIONS = (
    Option(
        name="aws_event_bridge",
        env=None,
        kind=bool,
        default=False,
        help="EventBridge rules or schedules sending the layer's triggers to the worker-trigger queue (needs --aws)",
    ),
    Option(
        name="event_bridge_type",
        env="EVENT_BRIDGE_TYPE",
        default=None,
        help="rule (EventBridge rules: LocalStack, moto) or schedule (EventBridge Scheduler: AWS); "
        "required with --aws-event-bridge",
        choices=tuple(t.value for t in EventBridgeType),
    ),
    Option(
        name="timeout",
        env="SETUP_TIMEOUT",
        kind=float,
        default=300.0,
        help="seconds to wait for the resources to be ready",
    ),
    Option(
        name="poll_interval",
        env="SETUP_RESOURCE_POLL_INTERVAL",
        kind=float,
        default=5.0,
        help="seconds between readiness checks",
    ),
)

SETUP_OPTIONS = tuple(o for o in RUN_OPTIONS if o.name in _SHARED) + SETUP_ONLY_OPTIONS
_AWS_SERVICE_FLAGS = ("aws_s3", "aws_sqs", "aws_sns", "aws_event_bridge")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "setup",
        help="create the embedded database and object store, or with --aws the AWS resources (idempotent)",
        formatter_class=run_help.HelpFormatter,
    )
    add_options(parser, SETUP_OPTIONS)
    parser.set_defaults(handler=setup_command)


def setup_command(args: argparse.Namespace) -> int:
    """PostgreSQL (``--postgres-url``): its schema migrated; AWS (``--aws ...``): its resources made; without
    either, the embedded SQLite database and object store. Each step is idempotent."""
    values, problems = resolve(args, SETUP_OPTIONS)
    url = values["postgres_url"]
    problems += postgres_url_problems(values)
    if values["aws"]:
        config = aws_setup_config(values, problems)
        if problems:
            raise ConfigError(problems)
        if url:
            _setup_postgres(url)
        return _setup_aws(config)
    chosen = [f"--{name.replace('_', '-')}" for name in _AWS_SERVICE_FLAGS if values[name]]
    if chosen:
        problems.append(f"{', '.join(chosen)} {'needs' if len(chosen) == 1 else 'need'} --aws")
    if problems:
        raise ConfigError(problems)
    if url:
        _setup_postgres(url)
        return _setup_files(values)
    return _setup_embedded(values)


def _setup_postgres(url: str) -> None:
    from madara_orchestrator.backends.postgres_db import PostgresDatabase

    async def migrate() -> str:
        database = PostgresDatabase(url, max_size=1)
        try:
            await database.open()
        finally:
            await database.close()
        return database.display_url

    print(f"database: {asyncio.run(migrate())} (PostgreSQL, schema up to date)")


def _setup_files(values: Mapping[str, Any]) -> int:
    from madara_orchestrator.backends.filesystem import FilesystemObjectStore
    from madara_orchestrator.cli.backends import storage_dir

    files_dir = storage_dir(values)
    try:
        FilesystemObjectStore(files_dir)
    except OSError as exc:
        raise ConfigError([f"cannot create {exc.filename}: {exc.strerror}"]) from exc
    print(f"object store: {files_dir}")
    return 0


def aws_setup_config(values: Mapping[str, Any], problems: list[str]) -> AwsSetupConfig:
    """The provisioning plan from the resolved options; appends what is wrong to ``problems``. The queues
    and triggers are the engine's for the layer (``RuntimeConfig.queue_configs``, ``LAYER_TRIGGERS``)."""
    # Here, not at the top (as in the other functions): the AWS SDK and the engine are slow to import.
    from madara_orchestrator.backends.aws_setup import AwsSetupConfig
    from madara_orchestrator.engine.runtime import RuntimeConfig
    from madara_orchestrator.engine.triggers import LAYER_TRIGGERS

    layer = Layer(values["layer"])
    policies = dict(DEFAULT_POLICIES)
    for job_type, option in LEASE_OPTIONS.items():
        if values[option] is not None and values[option] > 0:
            policies[job_type] = dataclasses.replace(policies[job_type], lease_s=float(values[option]))
        else:
            problems.append(f"--{option.replace('_', '-')} must be positive, got {values[option]}")
    if values["aws_event_bridge"] and not values["event_bridge_type"]:
        problems.append(
            "--event-bridge-type (MADARA_ORCHESTRATOR_EVENT_BRIDGE_TYPE) is required with --aws-event-bridge: "
            "rule (LocalStack, moto) or schedule (AWS)"
        )
    config = AwsSetupConfig(
        queues=RuntimeConfig(layer=layer, policies=policies).queue_configs(),
        triggers=[t.value for t in LAYER_TRIGGERS[layer]],
        prefix=values["aws_prefix"] or None,
        queue_identifier=values["queue_identifier"],
        bucket_identifier=values["bucket_identifier"],
        topic_identifier=values["topic_identifier"],
        storage_expiration_days=values["storage_expiration_days"],
        s3=bool(values["aws_s3"]),
        sqs=bool(values["aws_sqs"]),
        sns=bool(values["aws_sns"]),
        event_bridge=bool(values["aws_event_bridge"]),
        event_bridge_type=EventBridgeType(values["event_bridge_type"] or EventBridgeType.RULE),
        interval_s=values["interval_seconds"],
        timeout_s=values["timeout"],
        poll_interval_s=values["poll_interval"],
    )
    problems.extend(config.problems())
    return config


def _setup_aws(config: AwsSetupConfig) -> int:
    from madara_orchestrator.backends.aws_client import Aws
    from madara_orchestrator.backends.aws_setup import Outcome, provision

    aws = Aws()
    try:
        report = provision(config, aws, echo=print)
    finally:
        aws.close()
    counts = {outcome: sum(1 for r in report if r.outcome == outcome) for outcome in Outcome}
    summary = ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n)
    print(f"AWS setup done ({config.event_bridge_type if config.event_bridge else 'no EventBridge'}): {summary}")
    return 0


def _setup_embedded(values: Mapping[str, Any]) -> int:
    from madara_orchestrator.backends.filesystem import FilesystemObjectStore
    from madara_orchestrator.backends.sqlite_db import SqliteDatabase
    from madara_orchestrator.cli.backends import sqlite_path, storage_dir

    db_path, files_dir = sqlite_path(values), storage_dir(values)

    async def create() -> None:
        """A file that is not our database (corrupt, another application's) is refused and left untouched."""
        database = SqliteDatabase(db_path)
        try:
            await database.open()
        finally:
            await database.close()

    try:
        asyncio.run(create())
        FilesystemObjectStore(files_dir)
    except OSError as exc:
        raise ConfigError([f"cannot create {exc.filename}: {exc.strerror}"]) from exc
    print(f"database: {db_path} (schema up to date)")
    print(f"object store: {files_dir}")
    return 0
