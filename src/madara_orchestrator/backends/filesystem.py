"""Object storage on the local filesystem, with the original's key layout (SPEC §10) as relative paths.

Expiry (SPEC §4.12, §18): ``tag_for_expiry`` marks settled artifacts, as S3 tags them; the store applies
the lifecycle rule itself, deleting marked files ``expiration_days`` after they were marked, at each
marking (the StorageCleanup trigger marks every minute or so). A mark is ``.expiry/<key>``, holding the
time it was first made. Each marking also writes one journal of the keys it marked first, in a bucket of
``.expiry-due/`` named by the hour of that time, so a sweep reads only the buckets and journals that are
due, not every mark ever made. Marks made before the journals existed are journaled once, at the first
marking (``.expiry-due/indexed`` says it was done)."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from madara_orchestrator.domain.errors import InvalidInput, NotFound

EXPIRY_DIR = ".expiry"
DUE_DIR = ".expiry-due"
RESERVED = frozenset({EXPIRY_DIR, DUE_DIR})
"""Top-level names that hold the store's own files, never objects."""
INDEXED = "indexed"
BUCKET_S = 3600
TMP = ".tmp-"


def _bucket_name(at: float) -> str:
    """Fixed width, so that the names sort as the hours do."""
    return f"{max(0, int(at // BUCKET_S)):012d}"


def _journal_time(name: str) -> float | None:
    try:
        return float(name.rpartition("-")[0])
    except ValueError:
        return None


def _write_atomically(path: Path, data: bytes) -> None:
    """Write then rename: a reader never sees half a file, a crash never leaves one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _collect(entries: list[os.DirEntry[str]], key_prefix: str, keys: list[str]) -> None:
    """The files among ``entries`` and below them, as keys ``key_prefix + relative path``. Symlinked
    directories are not followed (``Path.rglob`` did not), temporary files are left out."""
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            with os.scandir(entry.path) as below:
                _collect(list(below), key_prefix + entry.name + "/", keys)
        elif entry.is_file() and not entry.name.startswith(TMP):
            keys.append(key_prefix + entry.name)


def _list_keys(root: Path, prefix: str) -> list[str]:
    """Reads the directory ``prefix`` names up to its last ``/`` and, below it, the directories whose names
    start with the rest: never the whole tree, unless the prefix is empty."""
    directory, slash, start = prefix.rpartition("/")
    parts = directory.split("/") if slash else []
    if any(part in ("", ".", "..") for part in parts) or (parts and parts[0] in RESERVED):
        return []  # no key has such a path (an empty, relative or reserved part)
    try:
        with os.scandir(root.joinpath(*parts)) as entries:
            found = [e for e in entries if e.name.startswith(start) and (parts or e.name not in RESERVED)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    keys: list[str] = []
    _collect(found, directory + slash, keys)
    return sorted(keys)


class FilesystemObjectStore:
    def __init__(
        self, root: str | Path, *, expiration_days: float | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        """``expiration_days``: how long marked files are kept (None: marked files are kept for ever)."""
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.expiration_days = expiration_days
        self._clock = clock
        self._marks = self.root / EXPIRY_DIR
        self._due = self.root / DUE_DIR
        self._is_indexed = False

    def _path(self, key: str) -> Path:
        if (
            not key
            or key.startswith("/")
            or key.split("/")[0] in RESERVED
            or any(part in ("", ".", "..") for part in key.split("/"))
        ):
            raise InvalidInput(f"invalid object key {key!r}")
        return self.root / key

    async def put(self, key: str, data: bytes) -> None:
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, data)

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
        """Every key starting with ``prefix``, sorted."""
        return await asyncio.to_thread(_list_keys, self.root, prefix)

    async def tag_for_expiry(self, keys: Sequence[str]) -> int:
        """Mark the existing files among ``keys`` (the mark holds the time it was first made), then delete
        the marked files whose time is up."""
        at = self._clock()

        def mark_and_sweep() -> int:
            self._index_old_marks()
            marked = 0
            first: dict[str, None] = {}
            for key in keys:
                if not self._path(key).is_file():
                    continue
                marked += 1
                if not (self._marks / key).exists():
                    first[key] = None
            if first:
                # The journal first: a mark without a journal would never be swept.
                self._journal(at, list(first))
                for key in first:
                    mark = self._marks / key
                    mark.parent.mkdir(parents=True, exist_ok=True)
                    _write_atomically(mark, repr(at).encode())
            if self.expiration_days is not None:
                self._sweep(at - self.expiration_days * 86400)
            return marked

        return await asyncio.to_thread(mark_and_sweep)

    def _journal(self, at: float, keys: Sequence[str]) -> None:
        bucket = self._due / _bucket_name(at)
        data = json.dumps(list(keys)).encode()
        for attempt in range(2):
            bucket.mkdir(parents=True, exist_ok=True)
            try:
                _write_atomically(bucket / f"{at!r}-{uuid.uuid4().hex}", data)
                return
            except FileNotFoundError:
                if attempt:  # a sweep removed the (old) bucket between its mkdir and this write: once more
                    raise

    def _sweep(self, marked_before: float) -> None:
        """Delete the files marked at ``marked_before`` or earlier, reading only the journals of that time."""
        last = _bucket_name(marked_before)
        with os.scandir(self._due) as entries:
            buckets = sorted(entry.name for entry in entries if entry.is_dir() and entry.name <= last)
        for name in buckets:
            bucket = self._due / name
            with os.scandir(bucket) as entries:
                journals = sorted(entry.name for entry in entries if not entry.name.startswith(TMP))
            for journal in journals:
                when = _journal_time(journal)
                if when is not None and when <= marked_before:
                    self._expire(bucket / journal, marked_before)
            try:
                bucket.rmdir()
            except OSError:
                pass  # not empty: journals not due yet (the last hour) or being written

    def _expire(self, journal: Path, marked_before: float) -> None:
        try:
            content = json.loads(journal.read_bytes())
        except FileNotFoundError:
            return  # another sweep did it
        except ValueError:
            content = []  # not a journal of ours: dropped
        for key in [str(key) for key in content] if isinstance(content, list) else []:
            try:
                path = self._path(key)
                when = float((self._marks / key).read_text())
            except (InvalidInput, OSError, ValueError):
                continue  # no mark (already deleted) or one this store does not understand: left as is
            if when <= marked_before:  # a later mark of the same key has a later journal
                path.unlink(missing_ok=True)
                (self._marks / key).unlink(missing_ok=True)
        journal.unlink(missing_ok=True)

    def _index_old_marks(self) -> None:
        """Once per store: journal the marks made before journals existed, then record that it is done. A
        crash before the record means journaling them again, which is harmless."""
        if self._is_indexed or (self._due / INDEXED).exists():
            self._is_indexed = True
            return
        by_time: dict[float, list[str]] = {}
        for mark in self._marks.rglob("*"):  # none in a new store
            if not mark.is_file() or mark.name.startswith(TMP):
                continue
            try:
                by_time.setdefault(float(mark.read_text()), []).append(mark.relative_to(self._marks).as_posix())
            except (OSError, ValueError):
                continue  # the old sweep skipped these too
        for at, keys in by_time.items():
            self._journal(at, keys)
        self._due.mkdir(parents=True, exist_ok=True)
        _write_atomically(self._due / INDEXED, b"marks of .expiry/ journaled in the hour buckets\n")
        self._is_indexed = True
