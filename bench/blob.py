"""Benchmark of the blob pipeline: DA encoding + NTT per blob, KZG per blob, and a 6-blob settlement's
KZG work spread over the machine's cores.

    .venv/bin/python bench/blob.py [--vectors ../shared/vectors] [--repeat 5]

The last line is ``ntt_ms_per_blob=X kzg6_s=Y``: X is the forward transform of one full blob (median
of the runs); Y is the wall time of the KZG work of a 6-blob settlement (commitment, 128 EIP-7594 cell
proofs and the point proof at x_0 for each blob) on a warm process pool of one worker per core.
ckzg keeps the GIL, so threads do not help; the thread figure is printed to show it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from madara_orchestrator.domain.chain import FELTS_PER_BLOB  # noqa: E402
from madara_orchestrator.starknet import kzg  # noqa: E402
from madara_orchestrator.starknet.blob import (  # noqa: E402
    felts_to_blobs,
    inverse_ntt_bit_reversed,
    ntt_bit_reversed,
)
from madara_orchestrator.starknet.da import StaticNonces, encode_state_update_for_da  # noqa: E402
from madara_orchestrator.starknet.felt import BLS_MODULUS, STARKNET_PRIME  # noqa: E402
from madara_orchestrator.starknet.state_update import parse_state_update_json  # noqa: E402

N_SETTLEMENT_BLOBS = 6


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.1f} ms (min {min(values) * 1000:.1f})"


def settlement_work(args: tuple[bytes, int]) -> tuple[bytes, list[bytes], bytes, int]:
    """What the Ethereum settlement does per blob: commitment, cell proofs, point proof at x_0."""
    blob, z = args
    commitment = kzg.blob_to_commitment(blob)
    cells = kzg.compute_cell_proofs(blob)
    proof, y = kzg.compute_point_proof(blob, z)
    return commitment, cells, proof, y


def touch_setup(_: int) -> None:
    kzg.kzg_settings()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", default=str(ROOT / ".." / "shared" / "vectors"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    repeat = max(1, args.repeat)
    rng = random.Random(1)
    cores = os.cpu_count() or 1
    print(f"python {sys.version.split()[0]}, {cores} cores")

    # -- transform ----------------------------------------------------------------------------
    coefficients = [rng.randrange(STARKNET_PRIME) for _ in range(FELTS_PER_BLOB)]
    forward = timed(lambda: ntt_bit_reversed(coefficients), repeat * 2)
    evaluations = ntt_bit_reversed(coefficients)
    inverse = timed(lambda: inverse_ntt_bit_reversed(evaluations), repeat * 2)
    print(f"NTT forward (4096 felts → blob evaluations): {ms(forward)}")
    print(f"NTT inverse (blob → felts):                   {ms(inverse)}")

    # -- encoding + transform per blob, on a real block when the vectors are there --------------
    vectors = Path(args.vectors)
    update_path = vectors / "da" / "state_update" / "631861.json"
    if update_path.is_file():
        update = parse_state_update_json(update_path.read_text())
        nonces = {
            int(i["address"]): int(i["nonce"], 16)
            for i in json.loads((vectors / "da" / "nonces" / "631861.json").read_text())
        }

        def encode_block() -> list[bytes]:
            felts = asyncio.run(
                encode_state_update_for_da(
                    update, block_number=631861, nonce_source=StaticNonces(nonces), starknet_version="0.13.2"
                )
            )
            return felts_to_blobs(felts, max_blobs=N_SETTLEMENT_BLOBS)

        n_blobs = len(encode_block())
        runs = [t / n_blobs for t in timed(encode_block, repeat)]
        print(f"DA encoding + transform, block 631861 ({n_blobs} blob): {ms(runs)} per blob")
    felts_6 = [rng.randrange(STARKNET_PRIME) for _ in range(N_SETTLEMENT_BLOBS * FELTS_PER_BLOB - 100)]
    six = timed(lambda: felts_to_blobs(felts_6, max_blobs=N_SETTLEMENT_BLOBS), max(1, repeat // 2))
    print(f"felts → 6 blobs (validation + transform + bytes): {ms([t / N_SETTLEMENT_BLOBS for t in six])} per blob")

    # -- KZG per blob ----------------------------------------------------------------------------
    start = time.perf_counter()
    kzg.kzg_settings()
    print(f"trusted setup load (once per process): {(time.perf_counter() - start):.2f} s")
    blobs = felts_to_blobs(felts_6, max_blobs=N_SETTLEMENT_BLOBS)
    blob = blobs[0]
    commitment = kzg.blob_to_commitment(blob)
    z = rng.randrange(BLS_MODULUS)
    print(f"KZG commitment:        {ms(timed(lambda: kzg.blob_to_commitment(blob), repeat))}")
    print(f"KZG blob proof:        {ms(timed(lambda: kzg.compute_blob_proof(blob, commitment), repeat))}")
    print(f"KZG point proof (x_0): {ms(timed(lambda: kzg.compute_point_proof(blob, z), repeat))}")
    print(f"KZG 128 cell proofs:   {ms(timed(lambda: kzg.compute_cell_proofs(blob), repeat))}")

    # -- 6-blob settlement KZG work ----------------------------------------------------------------
    tasks = [(b, z) for b in blobs]
    serial = timed(lambda: [settlement_work(t) for t in tasks], max(1, repeat // 2))
    print(f"6-blob settlement KZG, serial:              {statistics.median(serial):.2f} s")
    with ThreadPoolExecutor(max_workers=cores) as threads:
        threaded = timed(lambda: list(threads.map(settlement_work, tasks)), max(1, repeat // 2))
    print(f"6-blob settlement KZG, {cores} threads:           {statistics.median(threaded):.2f} s (ckzg keeps the GIL)")
    start = time.perf_counter()
    # The setup is already loaded here: forked workers inherit it; elsewhere the initializer loads it once.
    with ProcessPoolExecutor(max_workers=cores, initializer=kzg.kzg_settings) as pool:
        list(pool.map(touch_setup, range(cores)))
        print(f"process pool start + warm-up: {time.perf_counter() - start:.2f} s")
        parallel = timed(lambda: list(pool.map(settlement_work, tasks)), max(1, repeat // 2))
        expected = [settlement_work(t) for t in tasks[:1]]
        assert list(pool.map(settlement_work, tasks[:1])) == expected
    kzg6 = statistics.median(parallel)
    print(f"6-blob settlement KZG, {cores}-process pool:      {kzg6:.2f} s")

    # -- the service's way: one worker process (starknet/kzg.py compute_in_worker_process) -----------------
    kzg.compute_in_worker_process()
    try:
        start = time.perf_counter()
        kzg.blob_to_commitment(blob)
        print(f"worker process start + trusted setup load: {time.perf_counter() - start:.2f} s")
        worker = timed(lambda: [settlement_work(t) for t in tasks], max(1, repeat // 2))
        print(f"6-blob settlement KZG, the worker process: {statistics.median(worker):.2f} s")
    finally:
        kzg.stop_worker_process()

    print(f"ntt_ms_per_blob={statistics.median(forward) * 1000:.1f} kzg6_s={kzg6:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
