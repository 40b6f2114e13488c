"""Object storage on Amazon S3 (SPEC §10): ``ObjectStore`` over one bucket, plus the expiry tagging of
StorageCleanup (SPEC §4.12).

Keys are the same as in the filesystem store (``<batch>/cairo_pie.zip``, ``artifacts/batch/<n>/...``).
The bucket's lifecycle rule ``expire-settled-artifacts`` (made by ``orchestrator setup --aws --aws-s3``)
deletes objects tagged ``expire-after-settlement=true`` after ``--storage-expiration-days``; untagged
objects never expire.
"""

from __future__ import annotations

from collections.abc import Iterable

from botocore.exceptions import ClientError

from madara_orchestrator.backends.aws_client import Aws, error_code
from madara_orchestrator.domain.errors import ConfigError, InvalidInput, NotFound

EXPIRY_TAG_KEY = "expire-after-settlement"
EXPIRY_TAG_VALUE = "true"
LIFECYCLE_RULE_ID = "expire-settled-artifacts"

_MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class S3ObjectStore:
    def __init__(self, aws: Aws, bucket: str, *, list_page_size: int = 1000) -> None:
        """``bucket`` is the bucket's name, as ``aws_names.bucket_name(identifier, prefix)`` gives it."""
        self._aws = aws
        self._client = aws.client("s3")
        self.bucket = bucket
        self._page_size = list_page_size

    def _object(self, key: str) -> str:
        if not key:
            raise InvalidInput("invalid object key ''")
        return f"object s3://{self.bucket}/{key}"

    async def put(self, key: str, data: bytes) -> None:
        await self._aws.call(
            "PutObject",
            self._object(key),
            lambda: self._client.put_object(Bucket=self.bucket, Key=key, Body=data),
        )

    async def get(self, key: str) -> bytes:
        def read() -> bytes | None:
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if error_code(exc) == "NoSuchKey":
                    return None
                raise
            body = response["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

        data = await self._aws.call("GetObject", self._object(key), read)
        if data is None:
            raise NotFound(f"object {key!r} not found in s3://{self.bucket}")
        return data

    async def exists(self, key: str) -> bool:
        def head() -> bool:
            try:
                self._client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if error_code(exc) in _MISSING_OBJECT_CODES:
                    return False
                raise
            return True

        return await self._aws.call("HeadObject", self._object(key), head)

    async def size(self, key: str) -> int | None:
        def head() -> int | None:
            try:
                response = self._client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if error_code(exc) in _MISSING_OBJECT_CODES:
                    return None
                raise
            return int(response["ContentLength"])

        return await self._aws.call("HeadObject", self._object(key), head)

    async def delete(self, key: str) -> None:
        await self._aws.call(
            "DeleteObject",
            self._object(key),
            lambda: self._client.delete_object(Bucket=self.bucket, Key=key),
        )

    async def list(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix`` (all pages), sorted."""

        def walk() -> list[str]:
            keys: list[str] = []
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": self._page_size}
            )
            for page in pages:
                keys.extend(str(item["Key"]) for item in page.get("Contents") or [])
            return sorted(keys)

        return await self._aws.call("ListObjectsV2", f"S3 bucket {self.bucket!r}", walk)

    async def tag_for_expiry(self, keys: Iterable[str]) -> int:
        """Tag each object ``expire-after-settlement=true`` (replacing its tags) so the lifecycle rule
        deletes it later (SPEC §4.12). A missing object counts as done; any other failure raises, leaving
        the rest for the next run (tagging again is harmless). Returns how many objects were tagged."""
        wanted = list(keys)
        tagging = {"TagSet": [{"Key": EXPIRY_TAG_KEY, "Value": EXPIRY_TAG_VALUE}]}

        def tag_all() -> int:
            tagged = 0
            for key in wanted:
                try:
                    self._client.put_object_tagging(Bucket=self.bucket, Key=key, Tagging=tagging)
                except ClientError as exc:
                    if error_code(exc) in _MISSING_OBJECT_CODES:
                        continue
                    raise
                tagged += 1
            return tagged

        return await self._aws.call("PutObjectTagging", f"S3 bucket {self.bucket!r}", tag_all)

    async def check(self) -> None:
        """Pre-flight (SPEC §17): ``HeadBucket``; ``ConfigError`` naming the bucket and what to do when it is
        missing or not ours, ``BackendUnavailable`` when S3 cannot be reached."""

        def head() -> bool:
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                    return False
                raise
            return True

        resource = f"S3 bucket {self.bucket!r}"
        if not await self._aws.call("HeadBucket", resource, head):
            raise ConfigError([f"{resource} does not exist: run `orchestrator setup --aws --aws-s3` first"])
