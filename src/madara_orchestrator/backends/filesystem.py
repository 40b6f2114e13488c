"""Object storage on the local filesystem, with the original's key layout (SPEC §10) as relative paths.

Expiry (SPEC §4.12, §18): ``tag_for_expiry`` marks settled artifacts, as S3 tags them; the store applies
the lifecycle rule itself, deleting marked files ``expiration_days`` after they were marked, at each
marking (the StorageCleanup trigger marks every minute or so). Marks live under ``.expiry/``."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from madara_orchestrator.domain.errors import InvalidInput, NotFound

EXPIRY_DIR = ".expiry"


class FilesystemObjectStore:
    def __init__(
        self, root: str | Path, *, expiration_days: float | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        """``expiration_days``: how long marked files are kept (None: marked files are kept for ever)."""
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.expiration_days = expiration_days
        self._clock = clock

    def _path(self, key: str) -> Path:
        if (
            not key
            or key.startswith("/")
            or key.split("/")[0] == EXPIRY_DIR
            or any(part in ("", ".", "..") for part in key.split("/"))
        ):
            raise InvalidInput(f"invalid object key {key!r}")
        return self.root / key

    async def put(self, key: str, data: bytes) -> None:
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: a reader never sees half a file, a crash never leaves one.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

        await asyncio.to_thread(write)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise NotFound(f"object {key!r} not found in {self.root}") from None

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def list(self, prefix: str) -> list[str]:
        def walk() -> list[str]:
            keys = []
            for path in self.root.rglob("*"):
                if path.is_file() and not path.name.startswith(".tmp-"):
                    key = path.relative_to(self.root).as_posix()
                    if key.startswith(prefix) and not key.startswith(EXPIRY_DIR + "/"):
                        keys.append(key)
            return sorted(keys)

        return await asyncio.to_thread(walk)

    async def tag_for_expiry(self, keys: Sequence[str]) -> int:
        """Mark the existing files among ``keys`` (the mark holds the time it was first made), then delete
        the marked files whose time is up."""
        at = self._clock()

        def mark_and_sweep() -> int:
            marked = 0
            for key in keys:
                path = self._path(key)
                if not path.is_file():
                    continue
                mark = self.root / EXPIRY_DIR / key
                if not mark.exists():
                    mark.parent.mkdir(parents=True, exist_ok=True)
                    mark.write_text(repr(at))
                marked += 1
            if self.expiration_days is not None:
                self._sweep(at - self.expiration_days * 86400)
            return marked

        return await asyncio.to_thread(mark_and_sweep)

    def _sweep(self, marked_before: float) -> None:
        for mark in (self.root / EXPIRY_DIR).rglob("*"):
            if not mark.is_file():
                continue
            try:
                when = float(mark.read_text())
            except (OSError, ValueError):
                continue
            if when <= marked_before:
                (self.root / mark.relative_to(self.root / EXPIRY_DIR)).unlink(missing_ok=True)
                mark.unlink(missing_ok=True)
