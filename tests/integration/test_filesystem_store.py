"""The files object store reads what a call needs, not the whole tree: ``list`` reads only the directory its
prefix names, and an expiry sweep reads only the marks that are due (directories read and files opened are
counted, so these fail on a store that walks everything). Marks of the layout before the due journals are
still swept."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from madara_orchestrator.backends.filesystem import DUE_DIR, EXPIRY_DIR, INDEXED, FilesystemObjectStore
from madara_orchestrator.domain.errors import InvalidInput
from tests.helpers.engine import FakeClock

DAY = 86400.0
BATCHES = 40


class Reads:
    """Directories listed and files opened through ``os.scandir`` and ``io.open`` while installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.dirs: list[Path] = []
        self.files: list[Path] = []
        scandir, open_ = os.scandir, io.open

        def counting_scandir(path: Any = ".") -> Any:
            self.dirs.append(Path(path))
            return scandir(path)

        def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
            if not isinstance(file, int):
                self.files.append(Path(file))
            return open_(file, *args, **kwargs)

        monkeypatch.setattr(os, "scandir", counting_scandir)
        monkeypatch.setattr(io, "open", counting_open)

    def clear(self) -> None:
        self.dirs.clear()
        self.files.clear()

    def under(self, root: Path) -> tuple[set[Path], list[Path]]:
        return {d for d in self.dirs if d.is_relative_to(root)}, [f for f in self.files if f.is_relative_to(root)]


def batch_keys(index: int) -> list[str]:
    return [
        f"{index}/cairo_pie.zip",
        f"{index}/snos_output.json",
        f"blob/batch/{index}/1.txt",
        f"blob/batch/{index}/2.txt",
        f"state_update/batch/{index}.json",
    ]


async def filled(
    root: Path, clock: Callable[[], float] = FakeClock(), days: float | None = None
) -> FilesystemObjectStore:
    store = FilesystemObjectStore(root, expiration_days=days, clock=clock)
    for index in range(1, BATCHES + 1):
        for key in batch_keys(index):
            await store.put(key, key.encode())
    return store


async def test_list_reads_only_the_directory_the_prefix_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await filled(tmp_path / "objects")
    root = store.root
    reads = Reads(monkeypatch)

    assert await store.list("blob/batch/3/") == ["blob/batch/3/1.txt", "blob/batch/3/2.txt"]
    assert set(reads.dirs) == {root / "blob/batch/3"}

    reads.clear()
    listed = await store.list("blob/batch/3")
    assert listed == sorted(key for i in (3, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39) for key in batch_keys(i)[2:4])
    assert set(reads.dirs) == {root / "blob/batch"} | {root / f"blob/batch/{i}" for i in (3, *range(30, 40))}

    reads.clear()
    assert await store.list("state_update/batch/1") == sorted(
        f"state_update/batch/{i}.json" for i in (1, *range(10, 20))
    )
    assert set(reads.dirs) == {root / "state_update/batch"}, "files only: no directory below is read"

    reads.clear()
    assert await store.list("nothing/here/") == []
    assert await store.list("7/cairo_pie.zip/") == []
    assert reads.files == []


async def test_a_sweep_opens_only_the_marks_that_are_due(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(start=1_000_000.0)
    store = await filled(tmp_path / "objects", clock, days=14)
    for index in range(1, BATCHES + 1):  # one settled batch an hour
        assert await store.tag_for_expiry(batch_keys(index)) == 5
        clock.advance(3600)
    marks = store.root / EXPIRY_DIR
    reads = Reads(monkeypatch)

    clock.t = 1_000_000.0 + 14 * DAY - 1  # the first batch is due in a second
    await store.tag_for_expiry([])
    dirs, opened = reads.under(marks)
    assert (dirs, opened) == (set(), []), "nothing due: no mark read"
    assert len(reads.under(store.root / DUE_DIR)[0]) <= 2, "the buckets, and the one of the hour before"

    reads.clear()
    clock.t = 1_000_000.0 + 14 * DAY + 2 * 3600  # batches 1..3 are due
    await store.tag_for_expiry([])
    dirs, opened = reads.under(marks)
    assert dirs == set() and sorted(opened) == sorted(marks / key for i in (1, 2, 3) for key in batch_keys(i))
    left = await store.list("")
    assert left == sorted(key for i in range(4, BATCHES + 1) for key in batch_keys(i))

    clock.advance(BATCHES * 3600)
    await store.tag_for_expiry([])
    assert await store.list("") == []
    assert [p.name for p in (store.root / DUE_DIR).iterdir()] == [INDEXED], "swept buckets are removed"
    assert not any(p.is_file() for p in marks.rglob("*"))


async def test_marking_again_keeps_the_first_time(tmp_path: Path) -> None:
    clock = FakeClock(start=1_000_000.0)
    store = await filled(tmp_path / "objects", clock, days=14)
    await store.tag_for_expiry(batch_keys(1))
    clock.advance(10 * DAY)
    assert await store.tag_for_expiry([*batch_keys(1), *batch_keys(2)]) == 10
    clock.advance(4 * DAY)
    await store.tag_for_expiry([])
    assert not await store.list("1/") and await store.list("2/") == batch_keys(2)[:2]
    clock.advance(10 * DAY)
    await store.tag_for_expiry([])
    assert not await store.list("2/")


async def test_marks_of_the_old_layout_are_swept_when_due_and_journaled_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain upgraded while marks made by the store before the due journals are pending: none is lost."""
    root = tmp_path / "objects"
    t0 = 1_000_000.0
    for index in range(1, BATCHES + 1):  # what the old store wrote: the files, .expiry/<key> holding repr(time)
        for key in batch_keys(index):
            for path, text in ((root / key, key), (root / EXPIRY_DIR / key, repr(t0 + index * 3600))):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)

    clock = FakeClock(start=t0 + 14 * DAY + 10 * 3600)
    store = FilesystemObjectStore(root, expiration_days=14, clock=clock)
    await store.tag_for_expiry(["11/cairo_pie.zip"])  # already marked: the old mark's time stands
    assert await store.list("") == sorted(key for i in range(11, BATCHES + 1) for key in batch_keys(i))

    reads = Reads(monkeypatch)
    restarted = FilesystemObjectStore(root, expiration_days=14, clock=clock)
    clock.advance(3600)
    await restarted.tag_for_expiry([])
    dirs, opened = reads.under(root / EXPIRY_DIR)
    assert dirs == set() and sorted(opened) == sorted(root / EXPIRY_DIR / key for key in batch_keys(11))
    clock.advance(BATCHES * 3600)
    await restarted.tag_for_expiry([])
    assert await restarted.list("") == []


async def test_the_store_s_own_directories_are_no_keys(tmp_path: Path) -> None:
    clock = FakeClock()
    store = await filled(tmp_path / "objects", clock, days=14)
    await store.tag_for_expiry(batch_keys(1))
    assert (store.root / DUE_DIR).is_dir() and (store.root / EXPIRY_DIR).is_dir()
    for prefix in ("", ".", ".expiry", f"{DUE_DIR}/", f"{EXPIRY_DIR}/"):
        assert not [key for key in await store.list(prefix) if key.startswith(".")], prefix
    for key in (f"{DUE_DIR}/x", f"{EXPIRY_DIR}/1/cairo_pie.zip"):
        with pytest.raises(InvalidInput):
            await store.put(key, b"x")


async def test_a_store_that_only_reads_writes_nothing(tmp_path: Path) -> None:
    """``orchestrator cost`` opens the files store of a deployment to read it."""
    root = (tmp_path / "objects").resolve()
    (root / "1").mkdir(parents=True)
    (root / "1" / "cairo_pie.zip").write_bytes(b"x")
    before = sorted(root.rglob("*"))
    store = FilesystemObjectStore(root, expiration_days=14)
    assert await store.list("") == ["1/cairo_pie.zip"] and await store.get("1/cairo_pie.zip") == b"x"
    assert sorted(root.rglob("*")) == before
