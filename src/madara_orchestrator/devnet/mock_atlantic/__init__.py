"""A double of Atlantic's HTTP API, for tests and devnets: the REST subset ``AtlanticClient`` uses (SPEC §7.5).

Routes: ``GET atlantic-query-by-dedup-id``, ``POST atlantic-query`` (multipart), ``GET
atlantic-query/{id}``, ``POST buckets``, ``GET buckets/{id}``, ``POST buckets/close``, and the
artifacts under ``/artifacts/queries/{id}/{file}``. A submitted PIE is read and its real GPS fact
computed; an unreadable PIE makes the query FAILED with the reason. Queries go RECEIVED →
IN_PROGRESS → DONE over ``processing_s``; then the completion webhook is POSTed (if configured).

Knobs: ``latency_s`` (every API answer), ``failure_rate`` (share of API requests answered 503,
drawn from ``random.Random(seed)``: the same request sequence gives the same failures) and
one-shot ``Fault``s injected by tests (``state.inject``) or over HTTP (``POST /_mock/faults``).

Buckets: ``POST buckets`` is refused (400) unless its ``aggregatorVersion``, ``mockProof`` and
``aggregatorParams`` are what the aggregator takes (``bucket_request_problem``); the bucket keeps them.
Aggregation: when a bucket is closed and every child PIE holds a Starknet OS output (SPEC §6.6) of
consecutive block ranges, the bucket's chain id, fee token and DA public keys must give the children's
OS config hash, as the 0.14.1 aggregator asserts (``config_hash_problem``; else the bucket FAILS), and
the aggregator query's artifacts are consistent with the children, so they can be
settled: ``pie.cairo0.zip`` is a Cairo PIE of a mock aggregator program whose output is the
bootloader-style children section followed by the aggregator's own output (first block's pre-state
to last block's post-state, a KZG section for the blobs of the DA segment, the children's messages),
and ``da_blob.json`` is the DA segment (the children's state-diff areas, prefixed by their count).
With a ``fact_registry``, the aggregator fact (program hash with the ``AGGREGATOR`` prefix, see
``mock_aggregator_program_hash``) is registered before the bucket is DONE, as Atlantic's
FACT_HASH_REGISTRATION step does on L1. Children that are not OS outputs (a test program's PIE)
keep the old behaviour: the last child's PIE and a placeholder DA segment. The devnet SNOS runner's
stand-in PIE (a zip with ``devnet.json``) is accepted as a child, its output read from it.

Proofs: the ``proof.json`` of a query with a PIE is a Stone-shaped proof (``stone_proof_json``, no STARK
in it) of the bootloader running the PIE, as Atlantic proves a PIE: its public input attests the
bootloaded output ``[1, len + 2, program_hash, *PIE output]`` (``devnet.layout_bridge``), so
``program_output_of_proof`` gives what Piltover reads as ``snos_output``. The PIE's program hash is the one
computed for its fact; a devnet stand-in's is the one it records. An L2 verification query
(``result=PROOF_VERIFICATION_ON_L2``, file ``inputFile``, SPEC §7.9) must hold a wrapped Stone proof
(``wrap_proof``) and a hex ``programHash`` (the layout bridge program, ``--cairo-verifier-program-hash``);
it is answered with the layout bridge's proof as ``proof.json``, whose bootloaded output is
``[1, 4, programHash, verified program hash, poseidon(verified output)]``, and with an ``l2_fact_registry``
its fact ``poseidon(bootloader_program_hash, poseidon(bridge output))`` is registered there (Integrity on
the L2), with the security bits of the bridge proof, as Atlantic does. A bad input or a failed registration
ends the query FAILED.

Files: ``routes`` (the app and its routes), ``state`` (configuration, faults, queries and buckets),
``validation`` (what a bucket must be, as Atlantic's aggregator checks it), ``lifecycle`` (a query's and a
bucket's progress, artifacts, webhooks), ``proofs`` (facts and proofs), ``aggregation`` (the mock aggregator's
PIE and DA segment), ``server`` (running it).
"""

from madara_orchestrator.devnet.mock_atlantic.aggregation import (
    AGGREGATOR_PROGRAM_HASH,
    MOCK_AGGREGATOR_PROGRAM,
    build_mock_aggregation,
    mock_aggregator_program_hash,
)
from madara_orchestrator.devnet.mock_atlantic.routes import create_app
from madara_orchestrator.devnet.mock_atlantic.server import MockAtlanticServer, serve
from madara_orchestrator.devnet.mock_atlantic.state import (
    ARTIFACTS_PREFIX,
    L2_VERIFICATION,
    Fault,
    L2FactRegistry,
    MockAtlanticConfig,
    MockAtlanticState,
)
from madara_orchestrator.devnet.mock_atlantic.validation import bucket_request_problem, config_hash_problem

__all__ = [
    "AGGREGATOR_PROGRAM_HASH",
    "ARTIFACTS_PREFIX",
    "L2_VERIFICATION",
    "MOCK_AGGREGATOR_PROGRAM",
    "Fault",
    "L2FactRegistry",
    "MockAtlanticConfig",
    "MockAtlanticServer",
    "MockAtlanticState",
    "bucket_request_problem",
    "build_mock_aggregation",
    "config_hash_problem",
    "create_app",
    "mock_aggregator_program_hash",
    "serve",
]
