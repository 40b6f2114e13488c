"""Fact computation time for the SNOS PIE of Sepolia block 924016: ours against cairo-lang's.

Both start from the zip bytes and end with the GPS fact (read the PIE, program hash, output,
topology, merkle root, keccak). Ours is measured cold (program-hash memo cleared before each
run); the warm figure (memoised program hash, as for every block after the first) is printed too.

Usage: .venv/bin/python bench/fact.py [PIE_ZIP] [--runs N]
The last line is ``fact_s=X cairo_lang_s=Y`` (best of N runs each, seconds).
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

from madara_orchestrator.starknet.facts import clear_program_hash_cache, fact_info
from madara_orchestrator.starknet.pie import read_pie

DEFAULT_PIE = Path(__file__).resolve().parents[1] / ".." / "shared" / "vectors" / "pie" / "sepolia_924016.zip"
EXPECTED_FACT = "0x033144ad6b132b1012f15e50aa53de1ed91b3b1af729014c3f1c00b702f972ea"


def ours(data: bytes, *, cold: bool) -> tuple[float, str]:
    if cold:
        clear_program_hash_cache()
    started = time.perf_counter()
    fact = fact_info(read_pie(data)).fact
    return time.perf_counter() - started, fact


def cairo_lang(data: bytes) -> tuple[float, str]:
    from starkware.cairo.bootloaders.generate_fact import get_cairo_pie_fact_info
    from starkware.cairo.lang.vm.cairo_pie import CairoPie

    started = time.perf_counter()
    fact = get_cairo_pie_fact_info(CairoPie.from_file(io.BytesIO(data))).fact
    return time.perf_counter() - started, fact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pie", nargs="?", type=Path, default=DEFAULT_PIE)
    parser.add_argument("--runs", type=int, default=3, help="runs of ours (cairo-lang runs once: ~25 s)")
    args = parser.parse_args()
    data = args.pie.resolve().read_bytes()
    print(f"PIE {args.pie.resolve()} ({len(data)} bytes)")

    cold = [ours(data, cold=True) for _ in range(args.runs)]
    warm = [ours(data, cold=False) for _ in range(args.runs)]
    fact = cold[0][1]
    print(f"ours cold (program hash computed): {', '.join(f'{t:.3f}' for t, _ in cold)} s  fact {fact}")
    print(f"ours warm (program hash memoised): {', '.join(f'{t:.3f}' for t, _ in warm)} s")
    theirs_s, theirs_fact = cairo_lang(data)
    print(f"cairo-lang: {theirs_s:.3f} s  fact {theirs_fact}")
    if fact != theirs_fact:
        raise SystemExit(f"facts differ: ours {fact}, cairo-lang {theirs_fact}")
    if args.pie.name == "sepolia_924016.zip" and fact != EXPECTED_FACT:
        raise SystemExit(f"fact {fact} is not the recorded {EXPECTED_FACT}")
    best = min(t for t, _ in cold)
    print(f"speed-up (cold): {theirs_s / best:.1f}x")
    print(f"fact_s={best:.3f} cairo_lang_s={theirs_s:.3f}")


if __name__ == "__main__":
    main()
