"""`orchestrator pie info`: the summary of a PIE, and one clear error line for a damaged file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from madara_orchestrator.cli.main import main
from tests.unit.pie.conftest import FIBONACCI_FACT, SEPOLIA_924016_FACT, pie_path


def test_info_json_for_fibonacci(vectors_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pie", "info", str(pie_path(vectors_dir, "fibonacci.zip")), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["fact"] == FIBONACCI_FACT
    assert summary["n_steps"] == 72
    assert summary["output"] == ["0x59"]
    assert summary["builtins"] == ["output"]
    assert int(summary["program_hash"], 16) > 0


def test_info_json_for_the_snos_pie(vectors_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pie", "info", str(pie_path(vectors_dir, "sepolia_924016.zip")), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["fact"] == SEPOLIA_924016_FACT
    assert summary["n_steps"] == 15135
    assert len(summary["output"]) == 23 and all(word.startswith("0x") for word in summary["output"])
    assert int(summary["output"][3], 16) == 924016
    assert summary["fact_topology"] == {"tree_structure": [2, 1, 0, 2], "page_sizes": [12, 11]}


def test_info_text(vectors_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pie", "info", str(pie_path(vectors_dir, "fibonacci.zip"))]) == 0
    out = capsys.readouterr().out
    assert f"fact:          {FIBONACCI_FACT}" in out
    assert "n_steps:       72" in out


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04broken"])
def test_a_damaged_file_is_one_error_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = tmp_path / "broken.zip"
    path.write_bytes(content)
    assert main(["pie", "info", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: not a Cairo PIE")


def test_a_missing_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pie", "info", str(tmp_path / "absent.zip")]) == 2
    assert "cannot read" in capsys.readouterr().err
