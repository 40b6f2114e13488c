"""Contract tests of the object store: put, get, exists, delete, list by prefix (any string), a missing key.

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


NESTED_KEYS = [
    "1/cairo_pie.zip",
    "1/snos_output.json",
    "10/cairo_pie.zip",
    "2/cairo_pie.zip",
    "artifacts/batch/1/da_blob.json",
    "artifacts/batch/1/sub/deeper/x.json",
    "blob/batch/1/1.txt",
    "blob/batch/1.txt",
    "blob/batch/1-a.txt",
    "blob/batch/10/1.txt",
    "blob/batchx/1.txt",
    "prover_buckets/3/bucket-a",
    "state_update/batch/1.json",
    "state_update/batch/10.json",
    "state_update/batch/2.json",
]

PREFIX_SHAPES = [
    "",  # everything
    "1",  # mid-name at the top: a directory's name and its longer siblings
    "1/",  # a top-level directory
    "1/cairo",  # mid-name in a directory
    "1/cairo_pie.zip",  # a whole key
    "1/cairo_pie.zip/",  # below a file: nothing
    "artifacts/",  # nested directories below
    "artifacts/batch/1/sub/deeper/",
    "artifacts/batch/1/s",
    "blob/batch/1",  # a directory, a file and a longer name sharing the start
    "blob/batch/1/",
    "blob/batch",  # ends where a directory's name does, with a longer sibling
    "blob/batch/",
    "state_update/batch/1",  # files only
    "prover_buckets/",
    "nothing/",
    "nothing",
    "blob/nothing/x",
    "/",
    "1//",
    "./1/",
    "blob/../1/",
    "zzz",
]


@pytest.mark.parametrize("prefix", PREFIX_SHAPES)
async def test_list_returns_exactly_the_keys_starting_with_the_prefix_in_string_order(
    store: ObjectStore, prefix: str
) -> None:
    for key in NESTED_KEYS:
        await store.put(key, b"x")
    listed = await store.list(prefix)
    assert listed == sorted(key for key in NESTED_KEYS if key.startswith(prefix)), prefix


async def test_a_deleted_object_leaves_the_listing(store: ObjectStore) -> None:
    for key in ("a/b/c.txt", "a/b/d.txt", "a/e.txt"):
        await store.put(key, b"x")
    await store.delete("a/b/c.txt")
    assert await store.list("a/") == ["a/b/d.txt", "a/e.txt"]
    assert await store.list("a/b") == ["a/b/d.txt"]
