"""`orchestrator pie info FILE [--json]`: what a Cairo PIE holds and the fact it proves."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from madara_orchestrator.domain.errors import InvalidInput


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("pie", help="inspect Cairo PIE files")
    commands = parser.add_subparsers(dest="pie_command", metavar="COMMAND")
    commands.required = True
    info = commands.add_parser("info", help="program hash, steps, builtins, output and fact of a PIE zip")
    info.add_argument("file", type=Path, help="the PIE zip (cairo_pie.zip)")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(handler=run_info)


def pie_summary(data: bytes) -> dict[str, Any]:
    """The facts about a PIE zip, as printed by ``pie info --json``."""
    from madara_orchestrator.starknet.facts import HashFunction, compute_program_hash, fact_info, l2_fact
    from madara_orchestrator.starknet.pie import read_pie

    pie = read_pie(data)
    info = fact_info(pie)
    resources = pie.execution_resources
    return {
        "program_hash": hex(info.program_hash),
        "program_hash_poseidon": hex(compute_program_hash(pie.program, HashFunction.POSEIDON)),
        "n_steps": resources.n_steps,
        "n_memory_holes": resources.n_memory_holes,
        "builtins": list(pie.program.builtins),
        "builtin_instance_counter": dict(resources.builtin_instance_counter),
        "program_size": len(pie.program.data),
        "memory_cells": len(pie.memory),
        "output": [hex(v) for v in info.program_output],
        "fact_topology": {
            "tree_structure": list(info.fact_topology.tree_structure),
            "page_sizes": list(info.fact_topology.page_sizes),
        },
        "fact": info.fact,
        "l2_fact": l2_fact(info.program_output),
        "version": dict(pie.version),
    }


def run_info(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        summary = pie_summary(data)
    except InvalidInput as exc:
        raise InvalidInput(f"{path}: {exc}") from exc
    if args.json:
        json.dump(summary, sys.stdout)
        sys.stdout.write("\n")
        return 0
    out = summary["output"]
    shown = ", ".join(out[:12]) + (f", … ({len(out)} words)" if len(out) > 12 else "")
    lines = [
        f"file:          {path}",
        f"version:       {summary['version'].get('cairo_pie', '?')}",
        f"program hash:  {summary['program_hash']} (pedersen, bootloader version 0)",
        f"               {summary['program_hash_poseidon']} (poseidon)",
        f"program size:  {summary['program_size']} words",
        f"n_steps:       {summary['n_steps']} ({summary['n_memory_holes']} memory holes)",
        f"builtins:      {', '.join(summary['builtins']) or '(none)'}",
        "instances:     "
        + (", ".join(f"{k}={v}" for k, v in summary["builtin_instance_counter"].items() if v) or "(none)"),
        f"output:        [{shown}]",
        f"fact topology: tree {summary['fact_topology']['tree_structure']}, "
        f"pages {summary['fact_topology']['page_sizes']}",
        f"fact:          {summary['fact']} (GPS, keccak)",
        f"l2 fact:       {summary['l2_fact']} (poseidon)",
    ]
    print("\n".join(lines))
    return 0
