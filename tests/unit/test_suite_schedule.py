"""The suite's own test order for pytest-xdist (tests/helpers/schedule.py): each worker's first share starts
with its part of the long tests, balanced by their expected time, and every test is run once."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.helpers.schedule import DURATIONS_FILE, deal, load_durations, share_sizes


def shares(order: list[str], workers: int) -> list[list[str]]:
    out, start = [], 0
    for size in share_sizes(len(order), workers):
        out.append(order[start : start + size])
        start += size
    return out


def test_share_sizes_are_worksteals_first_cut() -> None:
    assert share_sizes(10, 4) == [2, 2, 3, 3]
    assert share_sizes(2308, 4) == [577, 577, 577, 577]
    assert share_sizes(3, 4) == [0, 1, 1, 1]
    assert sum(share_sizes(2311, 3)) == 2311


def test_long_tests_are_spread_by_expected_time_and_lead_each_share() -> None:
    seconds = {"L90": 90, "L77": 77, "L73": 73, "L66": 66, "L64": 64, "L52": 52, "L38": 38, "L34": 34}
    items = [f"s{i}" for i in range(30)] + list(seconds) + [f"t{i}" for i in range(30)]
    order = deal(items, workers=4, is_long=lambda t: t in seconds, seconds=lambda t: seconds[t], group=lambda t: t)
    assert sorted(order) == sorted(items)
    parts = shares(order, 4)
    heads = [[t for t in part if t in seconds] for part in parts]
    for part, head in zip(parts, heads, strict=True):
        assert part[: len(head)] == head, "a share's long tests come first"
    loads = sorted(sum(seconds[t] for t in head) for head in heads)
    assert loads == [115, 124, 125, 130], "longest first, each to the share expected to end first"
    assert [t for t in order if t not in seconds] == [t for t in items if t not in seconds], "short ones keep order"


def test_tests_sharing_a_module_fixture_stay_in_one_share() -> None:
    rng = random.Random(7)
    items = [f"m{i % 5}::t{i}" for i in range(40)] + [f"f::{i}" for i in range(200)]
    rng.shuffle(items)
    order = deal(
        items,
        workers=4,
        is_long=lambda t: t.startswith("m"),
        seconds=lambda t: 10.0,
        group=lambda t: t.split("::")[0],
    )
    for module in ("m0", "m1", "m2", "m3", "m4"):
        holding = [k for k, part in enumerate(shares(order, 4)) if any(t.startswith(module + "::") for t in part)]
        assert len(holding) == 1, (module, holding)


def test_one_worker_runs_the_long_tests_first_in_collected_order() -> None:
    items = ["a", "B", "c", "D", "e"]
    order = deal(items, workers=1, is_long=str.isupper, seconds=lambda t: 1.0, group=lambda t: t)
    assert order == ["B", "D", "a", "c", "e"]


def test_the_durations_table_names_only_long_tests_that_exist(tmp_path: Path) -> None:
    table = load_durations()
    assert table, f"{DURATIONS_FILE} is missing or empty"
    root = DURATIONS_FILE.parent.parent
    for nodeid in table:
        path, _, name = nodeid.partition("::")
        source = (root / path).read_text()
        assert f"def {name.split('[')[0]}(" in source, f"{nodeid} in {DURATIONS_FILE.name} is no test"
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert load_durations(broken) == {}
    (tmp_path / "odd.json").write_text(json.dumps({"a": 3, "b": "x"}))
    assert load_durations(tmp_path / "odd.json") == {"a": 3.0}
