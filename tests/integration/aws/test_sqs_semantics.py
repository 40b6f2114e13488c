"""SqsQueue on moto, in real time (short timeouts): what the queue contract checks with a fake clock,
plus redrive to the dead-letter queue, version filtering, ARN addressing and errors.

Waiting is by receiving with long polling (``wait_s``), which returns as soon as a message is visible."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from madara_orchestrator import ORCHESTRATOR_VERSION
from madara_orchestrator.backends.aws_client import Aws, BotoClient
from madara_orchestrator.backends.aws_names import QueueAddressing
from madara_orchestrator.backends.aws_sqs import VERSION_ATTRIBUTE, SqsQueue
from madara_orchestrator.domain import dead_letters
from madara_orchestrator.domain.errors import BackendUnavailable, ConfigError
from madara_orchestrator.domain.queues import QueueConfig, QueueType
from tests.helpers.moto import ACCOUNT, REGION, create_sqs_queues

OTHER_VERSION = "0.0.9"


@dataclass
class Queues:
    aws: Aws
    queue: SqsQueue
    raw: BotoClient
    urls: dict[str, str]
    work: str
    dead: str


def _config(visibility_s: float, *, dead_letter: bool = True, max_receive_count: int = 3) -> QueueConfig:
    return QueueConfig(
        queue_type=QueueType.SNOS_JOB_PROCESSING if dead_letter else QueueType.JOB_HANDLE_FAILURE,
        visibility_timeout_s=visibility_s,
        concurrency=1,
        dead_letter=QueueType.JOB_HANDLE_FAILURE if dead_letter else None,
        max_receive_count=max_receive_count,
    )


@pytest.fixture
async def queues(aws_env: str, aws_prefix: str) -> AsyncIterator[Queues]:
    work, dead = f"{aws_prefix}_work", f"{aws_prefix}_dead"
    configs = {work: _config(1), dead: _config(30, dead_letter=False)}
    aws = Aws()
    urls = create_sqs_queues(aws, configs, {work: dead})
    queue = SqsQueue(aws, QueueAddressing.parse(), configs, foreign_version_delay_s=1)
    yield Queues(aws=aws, queue=queue, raw=aws.client("sqs"), urls=urls, work=work, dead=dead)
    aws.close()


async def test_an_unacked_message_reappears_after_the_visibility_timeout(queues: Queues) -> None:
    q = queues.queue
    await q.send(queues.work, "x")
    first = await q.receive(queues.work)
    assert first is not None and first.receive_count == 1
    assert (await q.depth(queues.work)).in_flight == 1
    assert await q.receive(queues.work) is None
    started = time.monotonic()
    second = await q.receive(queues.work, wait_s=5)
    assert second is not None and second.message_id == first.message_id and second.receive_count == 2
    assert time.monotonic() - started < 3
    await q.ack(first)  # a stale receipt deletes nothing
    await q.ack(second)
    depth = await q.depth(queues.work)
    assert (depth.visible, depth.in_flight, depth.delayed) == (0, 0, 0)


async def test_extend_keeps_a_message_hidden_past_its_visibility_timeout(queues: Queues) -> None:
    q = queues.queue
    await q.send(queues.work, "long job")
    message = await q.receive(queues.work)
    assert message is not None
    await q.extend(message, visibility_s=3)
    assert await q.receive(queues.work, wait_s=1.5) is None, "hidden past the queue's 1 s"
    again = await q.receive(queues.work, wait_s=5)
    assert again is not None and again.receive_count == 2


async def test_a_delayed_message_arrives_after_its_delay(queues: Queues) -> None:
    q = queues.queue
    sent = time.monotonic()
    await q.send(queues.work, "later", delay_s=1)
    assert await q.receive(queues.work) is None
    assert (await q.depth(queues.work)).delayed == 1
    message = await q.receive(queues.work, wait_s=5)
    assert message is not None and message.body == "later"
    assert time.monotonic() - sent >= 0.9


async def test_nack_puts_a_message_back_at_once_or_after_its_delay(queues: Queues) -> None:
    q = queues.queue
    await q.send(queues.work, "retry me")
    message = await q.receive(queues.work)
    assert message is not None
    await q.nack(message)
    again = await q.receive(queues.work)
    assert again is not None and again.receive_count == 2
    await q.nack(again, delay_s=1)
    assert await q.receive(queues.work) is None
    assert await q.receive(queues.work, wait_s=5) is not None


async def test_the_redrive_policy_moves_a_message_to_the_dead_letter_queue(queues: Queues) -> None:
    q = queues.queue
    await q.send(queues.work, "poison")
    for expected in (1, 2, 3):
        message = await q.receive(queues.work)
        assert message is not None and message.receive_count == expected
        await q.nack(message)
    assert await q.receive(queues.work) is None, "the receive after maxReceiveCount dead-letters"
    dead = await q.receive(queues.dead, wait_s=5)
    assert dead is not None and dead.body == "poison"
    assert dead.attributes[VERSION_ATTRIBUTE] == ORCHESTRATOR_VERSION
    # What SQS says of a dead letter, for its record (domain/dead_letters.py); moto names no source queue.
    assert float(dead.attributes[dead_letters.FIRST_RECEIVE_AT]) >= float(dead.attributes[dead_letters.SENT_AT]) > 0


async def test_a_message_of_another_version_is_left_to_its_instances(queues: Queues) -> None:
    q = queues.queue
    queues.raw.send_message(
        QueueUrl=queues.urls[queues.work],
        MessageBody='{"id": "theirs"}',
        MessageAttributes={VERSION_ATTRIBUTE: {"DataType": "String", "StringValue": OTHER_VERSION}},
    )
    assert await q.receive(queues.work) is None, "not handled by this version"
    depth = await q.depth(queues.work)
    assert (depth.visible, depth.in_flight, depth.delayed) == (0, 0, 1), "passed on as a delayed copy"

    theirs = SqsQueue(queues.aws, QueueAddressing.parse(), {queues.work: _config(1)}, version=OTHER_VERSION)
    copy = await theirs.receive(queues.work, wait_s=5)
    assert copy is not None and copy.body == '{"id": "theirs"}'
    assert copy.attributes == {VERSION_ATTRIBUTE: OTHER_VERSION}
    assert copy.receive_count == 1, "passing on does not count towards the dead-letter queue"


async def test_a_message_without_a_version_is_ours(queues: Queues) -> None:
    queues.raw.send_message(QueueUrl=queues.urls[queues.work], MessageBody="Snos")
    message = await queues.queue.receive(queues.work)
    assert message is not None and message.body == "Snos" and message.attributes == {}


async def test_queues_given_by_arn_are_addressed_without_lookups(aws_env: str, aws_prefix: str) -> None:
    addressing = QueueAddressing.parse(f"arn:aws:sqs:{REGION}:{ACCOUNT}:{aws_prefix}_{{}}_q")
    name = addressing.name_of(QueueType.WORKER_TRIGGER)
    configs = {name: _config(30, dead_letter=False)}
    maker, aws = Aws(), Aws(region="eu-west-3")  # the ARN's region wins
    try:
        create_sqs_queues(maker, configs)
        queue = SqsQueue(aws, addressing, configs)
        assert await queue.url(name) == f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
        await queue.send(name, "Snos")
        message = await queue.receive(name, wait_s=5)
        assert message is not None and message.body == "Snos"
    finally:
        maker.close()
        aws.close()


async def test_a_missing_queue_is_a_one_line_error_naming_it_and_setup(aws_env: str, aws_prefix: str) -> None:
    name = f"{aws_prefix}_missing"
    aws = Aws()
    try:
        queue = SqsQueue(aws, QueueAddressing.parse(), {name: _config(30)})
        with pytest.raises(ConfigError) as caught:
            await queue.send(name, "x")
        (problem,) = caught.value.problems
        assert f"SQS queue {name!r} does not exist" in problem and "orchestrator setup --aws" in problem
    finally:
        aws.close()


async def test_an_unreachable_endpoint_is_an_outage(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    aws = Aws()
    try:
        queue = SqsQueue(aws, QueueAddressing.parse(), {"q": _config(30)})
        with pytest.raises(BackendUnavailable, match=re.escape("AWS unreachable at http://127.0.0.1:1")):
            await queue.receive("q")
    finally:
        aws.close()
