"""PIE fixtures: the recorded vectors, and small PIEs built in the test for cases no vector covers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from madara_orchestrator.starknet.pie import (
    CairoPie,
    ExecutionResources,
    PieMemory,
    PieMetadata,
    PieProgram,
    Relocatable,
    SegmentInfo,
    write_pie,
)
from tests.conftest import require

FIBONACCI_FACT = "0xca15503f02f8406b599cb220879e842394f5cf2cef753f3ee430647b5981b782"
SEPOLIA_924016_FACT = "0x033144ad6b132b1012f15e50aa53de1ed91b3b1af729014c3f1c00b702f972ea"


def pie_path(vectors_dir: Path, name: str) -> Path:
    path = vectors_dir / "pie" / name
    require(path.is_file(), f"PIE vector {path}")
    return path


@pytest.fixture(scope="session")
def fibonacci_zip(vectors_dir: Path) -> bytes:
    return pie_path(vectors_dir, "fibonacci.zip").read_bytes()


@pytest.fixture(scope="session")
def sepolia_zip(vectors_dir: Path) -> bytes:
    return pie_path(vectors_dir, "sepolia_924016.zip").read_bytes()


def build_pie(
    output: Sequence[int],
    *,
    program_data: Sequence[int] = (0x40780017FFF7FFF, 1, 0x208B7FFF7FFF7FFE),
    builtins: Sequence[str] = ("output",),
    pages: dict[str, list[int]] | None = None,
    tree_structure: list[int] | None = None,
    n_steps: int = 10,
) -> bytes:
    """A structurally valid PIE zip: program segment 0, execution 1, output 2 holding ``output``."""
    cells: dict[Relocatable, int | Relocatable] = {}
    for i, word in enumerate(program_data):
        cells[Relocatable(0, i)] = word
    cells[Relocatable(1, 0)] = Relocatable(2, 0)
    cells[Relocatable(1, 1)] = Relocatable(2, len(output))
    for i, word in enumerate(output):
        cells[Relocatable(2, i)] = word
    attributes: dict[str, Any] = {}
    if tree_structure is not None:
        attributes["gps_fact_topology"] = tree_structure
    pie = CairoPie(
        metadata=PieMetadata(
            program=PieProgram(data=tuple(program_data), builtins=tuple(builtins), main=0),
            program_segment=SegmentInfo(index=0, size=len(program_data)),
            execution_segment=SegmentInfo(index=1, size=2),
            ret_fp_segment=SegmentInfo(index=3, size=0),
            ret_pc_segment=SegmentInfo(index=4, size=0),
            builtin_segments={"output": SegmentInfo(index=2, size=len(output))},
        ),
        memory=PieMemory(cells),
        additional_data={"output_builtin": {"pages": pages or {}, "attributes": attributes}},
        execution_resources=ExecutionResources(
            n_steps=n_steps, builtin_instance_counter={"output_builtin": len(output)}
        ),
    )
    return write_pie(pie)
