"""Contract tests of the object store: put, get, exists, delete, list by prefix, a missing key.

Run over the filesystem store, S3 (on moto, one fresh bucket per test) and the in-memory store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from madara_orchestrator.backends.aws_client import Aws
from madara_orchestrator.backends.aws_s3 import S3ObjectStore
from madara_orchestrator.backends.filesystem import FilesystemObjectStore
from madara_orchestrator.backends.memory import MemoryObjectStore
from madara_orchestrator.domain.errors import NotFound
from madara_orchestrator.interfaces import ObjectStore


@pytest.fixture(params=["filesystem", "s3", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStore]:
    if request.param == "memory":
        yield MemoryObjectStore()
        return
    if request.param == "filesystem":
        yield FilesystemObjectStore(tmp_path / "objects")
        return
    request.getfixturevalue("aws_env")
    aws = Aws()
    bucket = f"contract-{uuid.uuid4().hex[:12]}"
    aws.client("s3").create_bucket(Bucket=bucket)
    try:
        yield S3ObjectStore(aws, bucket)
    finally:
        aws.close()


async def test_put_then_get_returns_the_bytes(store: ObjectStore) -> None:
    data = bytes(range(256)) * 10
    await store.put("1/cairo_pie.zip", data)
    assert await store.get("1/cairo_pie.zip") == data


async def test_put_replaces_an_object(store: ObjectStore) -> None:
    await store.put("state_update/batch/1.json", b"old")
    await store.put("state_update/batch/1.json", b"new")
    assert await store.get("state_update/batch/1.json") == b"new"


async def test_empty_objects_are_objects(store: ObjectStore) -> None:
    await store.put("empty.txt", b"")
    assert await store.exists("empty.txt")
    assert await store.get("empty.txt") == b""


async def test_a_missing_key_is_not_found(store: ObjectStore) -> None:
    assert not await store.exists("nope/proof.json")
    with pytest.raises(NotFound, match=r"nope/proof\.json"):
        await store.get("nope/proof.json")


async def test_exists_and_delete(store: ObjectStore) -> None:
    await store.put("artifacts/batch/3/da_blob.json", b"[]")
    assert await store.exists("artifacts/batch/3/da_blob.json")
    await store.delete("artifacts/batch/3/da_blob.json")
    assert not await store.exists("artifacts/batch/3/da_blob.json")
    with pytest.raises(NotFound):
        await store.get("artifacts/batch/3/da_blob.json")
    await store.delete("artifacts/batch/3/da_blob.json")  # deleting a missing key is not an error


async def test_list_by_prefix_is_sorted_and_a_string_prefix(store: ObjectStore) -> None:
    keys = ["blob/batch/1/2.txt", "blob/batch/1/1.txt", "blob/batch/10/1.txt", "blob/batch/2/1.txt", "1/x"]
    for key in keys:
        await store.put(key, key.encode())
    assert await store.list("blob/batch/1/") == ["blob/batch/1/1.txt", "blob/batch/1/2.txt"]
    assert await store.list("blob/batch/1") == ["blob/batch/1/1.txt", "blob/batch/1/2.txt", "blob/batch/10/1.txt"]
    assert await store.list("") == sorted(keys)
    assert await store.list("nothing/") == []
