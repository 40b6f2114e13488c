"""What S3ObjectStore does beyond the object-store contract: expiry tagging (SPEC §4.12), listing across
pages, and clear errors for a missing bucket."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from madara_orchestrator.backends.aws_client import Aws
from madara_orchestrator.backends.aws_s3 import EXPIRY_TAG_KEY, EXPIRY_TAG_VALUE, S3ObjectStore
from madara_orchestrator.domain.errors import ConfigError


@pytest.fixture
async def aws(aws_env: str) -> AsyncIterator[Aws]:
    aws = Aws()
    yield aws
    aws.close()


@pytest.fixture
def bucket(aws: Aws) -> str:
    name = f"s3test-{uuid.uuid4().hex[:12]}"
    aws.client("s3").create_bucket(Bucket=name)
    return name


async def test_settled_artifacts_are_tagged_for_expiry_and_missing_ones_count_as_done(aws: Aws, bucket: str) -> None:
    store = S3ObjectStore(aws, bucket)
    await store.put("artifacts/batch/1/cairo_pie.zip", b"pie")
    await store.put("state_update/batch/1.json", b"{}")
    await store.put("2/cairo_pie.zip", b"not settled")
    keys = ["artifacts/batch/1/cairo_pie.zip", "state_update/batch/1.json", "blob/batch/1/6.txt"]
    assert await store.tag_for_expiry(keys) == 2
    s3 = aws.client("s3")
    for key in keys[:2]:
        tags = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        assert tags == [{"Key": EXPIRY_TAG_KEY, "Value": EXPIRY_TAG_VALUE}]
    assert s3.get_object_tagging(Bucket=bucket, Key="2/cairo_pie.zip")["TagSet"] == []
    assert await store.tag_for_expiry(keys) == 2, "tagging again is harmless"


async def test_list_follows_every_page(aws: Aws, bucket: str) -> None:
    store = S3ObjectStore(aws, bucket, list_page_size=2)
    keys = [f"blob/batch/7/{i}.txt" for i in range(7)]
    for key in keys:
        await store.put(key, b"x")
    assert await store.list("blob/") == keys


async def test_a_missing_bucket_is_a_one_line_error_naming_it(aws: Aws) -> None:
    store = S3ObjectStore(aws, "no-such-bucket-here")
    with pytest.raises(ConfigError) as caught:
        await store.check()
    (problem,) = caught.value.problems
    assert "S3 bucket 'no-such-bucket-here' does not exist" in problem and "orchestrator setup --aws" in problem
    with pytest.raises(ConfigError, match="S3 bucket 'no-such-bucket-here' does not exist"):
        await store.put("a", b"x")
    with pytest.raises(ConfigError, match="S3 bucket 'no-such-bucket-here' does not exist"):
        await store.get("a")


async def test_check_passes_for_an_existing_bucket(aws: Aws, bucket: str) -> None:
    await S3ObjectStore(aws, bucket).check()
