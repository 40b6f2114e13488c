"""The aggregator runner contract: every check an aggregator's output passes before an Aggregator job
submits it, one test per check, with the tests' runner program's logic (in this process) producing the
outputs; and the request as docs/aggregator-runner.md writes it down."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest

from madara_orchestrator.aggregator.contract import (
    AggregatorRequest,
    ChainStart,
    DamagedAggregatorOutput,
    ErrorKind,
    check_input,
    check_output,
    failure_kind,
    parse_felts_json,
    raise_failure,
)
from madara_orchestrator.domain.errors import InvalidInput, JobError
from madara_orchestrator.settlement.encoding import program_output_fact
from madara_orchestrator.starknet.facts import aggregator_fact_info, filter_aggregator_output
from madara_orchestrator.starknet.felt import STARKNET_PRIME
from madara_orchestrator.starknet.os_output import parse_os_output, parse_output_sections
from madara_orchestrator.starknet.pie import read_pie
from tests.helpers.aggregator_runner_program import Produced, aggregator_program_hash, produce
from tests.unit.aggregator.conftest import CONFIG_HASH, CONTRACT, START, TO_L1, TO_L2, children, os_output, pie, request


def check(req: AggregatorRequest, produced: Produced, start: ChainStart = START) -> object:
    return check_output(
        req,
        start,
        cairo_pie_zip=produced.cairo_pie,
        program_output=produced.program_output,
        da_segment=produced.da_segment,
        source="the aggregator command agg",
    )


def damage(mode: str, req: AggregatorRequest | None = None) -> str:
    req = req or request()
    with pytest.raises(DamagedAggregatorOutput) as caught:
        check(req, produce(req, mode))
    assert caught.value.retryable is False, "a damaged output fails the job at once"
    message = str(caught.value)
    assert message.startswith(
        "the aggregator command agg returned a damaged output for aggregator batch 7 (blocks 3..6): "
    )
    return message


# -- a good output ----------------------------------------------------------------------------------


def test_a_good_output_gives_the_filtered_output_the_fact_and_the_da_segment() -> None:
    req = request()
    produced = produce(req)
    result = check(req, produced)
    assert result.program_output == filter_aggregator_output(produced.program_output)
    assert result.da_segment == produced.da_segment and result.cairo_pie_zip == produced.cairo_pie
    # The fact a core contract deployed with the runner's program hash checks: keccak(hash, keccak(output)).
    assert result.fact == "0x" + program_output_fact(aggregator_program_hash(), result.program_output).hex()
    own = parse_output_sections(result.program_output)
    header = own.header
    assert (header.initial_root, header.final_root, header.prev_block_number, header.new_block_number) == (
        0xA0,
        0xA2,
        2,
        6,
    )
    assert (header.prev_block_hash, header.new_block_hash, header.starknet_os_config_hash) == (0xB2, 0xB6, CONFIG_HASH)
    assert header.use_kzg_da and not header.full_output
    assert own.kzg is not None and own.kzg.n_blobs == 1
    assert [m.payload for m in own.messages_to_l1] == [(7, 8), (9,)], "both children's messages, in order"
    assert [m.payload for m in own.messages_to_l2] == [(42,)]
    assert own.end == len(result.program_output), "nothing follows the messages with KZG DA"


def test_the_test_runners_da_segment_is_the_squashed_state_diff() -> None:
    produced = produce(request())
    header = [0] * 8 + [0, 0]  # no KZG DA, packed (not full) output: the state diff follows the messages
    diff = parse_os_output([*header, 0, 0, *produced.da_segment]).state_diff
    assert diff is not None and len(diff.contracts) == 1
    (contract,) = diff.contracts
    assert contract.address == CONTRACT and contract.new_nonce == 2
    assert [(s.key, s.new_value) for s in contract.storage_changes] == [(0x10, 0x30), (0x11, 5)]


def test_cairo_lang_reads_the_aggregator_pie_and_its_output_is_the_output() -> None:
    from starkware.cairo.lang.vm.cairo_pie import CairoPie

    produced = produce(request())
    theirs = CairoPie.from_file(io.BytesIO(produced.cairo_pie))
    theirs.run_validity_checks()
    ours = read_pie(produced.cairo_pie)
    assert ours.output_segment() == produced.program_output
    assert ours.n_steps == theirs.execution_resources.n_steps > len(produced.program_output), "a real run"
    assert aggregator_fact_info(ours).program_hash == aggregator_program_hash()


def test_without_kzg_da_the_output_carries_the_da_segment() -> None:
    req = request(use_kzg_da=False)
    produced = produce(req)
    result = check(req, produced)
    assert parse_output_sections(result.program_output).kzg is None
    assert produced.program_output[-len(produced.da_segment) :] == produced.da_segment
    other = dataclasses.replace(produced, da_segment=[*produced.da_segment, 1])
    with pytest.raises(DamagedAggregatorOutput, match=r"without KZG DA the DA segment .* must be the state diff"):
        check(req, other)


# -- one check each ---------------------------------------------------------------------------------


def test_an_unreadable_pie_fails_the_job() -> None:
    assert "the Cairo PIE is unreadable: not a Cairo PIE" in damage("corrupt-pie")


def test_an_output_that_is_not_the_pies_output_segment_fails_the_job() -> None:
    message = damage("mismatched-output")
    assert "the program output (102 felts) is not the PIE's output segment (102 felts)" in message
    assert "they first differ at felt 101" in message


def test_a_kzg_section_that_does_not_commit_to_the_batchs_blobs_fails_the_job() -> None:
    assert "KZG commitment 0 is not the commitment of blob 0 of the DA segment" in damage("wrong-kzg")
    # The same commitments but another evaluation: y_0 is checked against the blob too.
    req = request()
    produced = produce(req)
    own_start = len(produced.program_output) - len(filter_aggregator_output(produced.program_output))
    y_low = own_start + 12 + 2  # x_0 and n_blobs, then one commitment (2 limbs), then y_0's low limb
    output = list(produced.program_output)
    output[y_low] ^= 1
    from tests.helpers.aggregator_runner_program import run_program

    forged = Produced(cairo_pie=run_program(output, "all_cairo"), program_output=output, da_segment=produced.da_segment)
    with pytest.raises(DamagedAggregatorOutput, match=r"y_0 is not blob 0 of the DA segment evaluated at x_0"):
        check(req, forged)


def test_an_output_that_does_not_cover_its_snos_outputs_fails_the_job() -> None:
    message = damage("wrong-root")
    assert (
        "the aggregator's output moves the chain from block 2 (root 0xa0, hash 0xb2) to block 6 (root 0xa3, "
        "hash 0xb6); its SNOS outputs from block 2 (root 0xa0, hash 0xb2) to block 6 (root 0xa2, hash 0xb6)"
    ) in message


def test_messages_that_are_not_the_snos_outputs_fail_the_job() -> None:
    message = damage("dropped-message")
    assert "its 1 L2→L1 messages are not the 2 of its SNOS outputs in order (they first differ at message 1)" in message
    assert TO_L1 and TO_L2  # the batch has messages both ways


def test_an_input_that_is_not_the_batchs_snos_outputs_fails_the_job() -> None:
    message = damage("wrong-input")
    assert "the aggregator's input is 1 task outputs that are not the batch's 2 SNOS outputs (SNOS batches 11, 12)" in (
        message
    )


def test_flags_other_than_asked_fail_the_job() -> None:
    produced = produce(request(use_kzg_da=False))
    with pytest.raises(DamagedAggregatorOutput, match="use_kzg_da=0, but the aggregator was asked for use_kzg_da=true"):
        check(request(), produced)


# -- the input: SNOS outputs that chain onto the chain before the batch -------------------------------


def test_the_first_snos_output_must_start_where_the_chain_before_the_batch_ends() -> None:
    req = request()
    for start, end_before in (
        (dataclasses.replace(START, initial_root=0xA9), "block 2 (root 0xa9, hash 0xb2)"),
        (dataclasses.replace(START, prev_block_hash=0xB9), "block 2 (root 0xa0, hash 0xb9)"),
        (dataclasses.replace(START, prev_block_number=1), "block 1 (root 0xa0, hash 0xb2)"),
    ):
        with pytest.raises(JobError) as caught:
            check_input(req, start)
        assert caught.value.retryable is False
        assert str(caught.value) == (
            "aggregator batch 7 (blocks 3..6) cannot be aggregated: the first SNOS output (SNOS batch 11) starts "
            f"from block 2 (root 0xa0, hash 0xb2), but the chain before the batch ends at {end_before}"
        )
    # At genesis there is no block hash before the batch to compare.
    check_input(req, dataclasses.replace(START, prev_block_hash=None))


def test_consecutive_snos_outputs_must_chain() -> None:
    first, second = children()
    broken = os_output(4, 6, (0xAF, 0xA2), (0xB4, 0xB6), to_l1=TO_L1[1])
    req = request(children=(first, dataclasses.replace(second, os_output=tuple(broken), cairo_pie=pie(broken))))
    with pytest.raises(
        JobError,
        match=r"SNOS batch 12 starts from block 4 \(root 0xaf, hash 0xb4\), not where SNOS "
        r"batch 11 ends, block 4 \(root 0xa1, hash 0xb4\)",
    ) as caught:
        check_input(req, START)
    assert caught.value.retryable is False


def test_each_snos_output_must_cover_its_snos_batch() -> None:
    first, second = children()
    req = request(children=(first, dataclasses.replace(second, start_block=6)))
    with pytest.raises(
        JobError,
        match=r"the OS output of SNOS batch 12 moves the chain from block 4 to 6, the SNOS batch covers blocks 6..6",
    ):
        check_input(req, START)
    devnet_genesis = os_output(-1, 1, (0, 1), (0, 2))
    assert parse_output_sections(devnet_genesis).header.prev_block_number == STARKNET_PRIME - 1


# -- the request and the failures as the contract writes them down ----------------------------------


def test_the_request_round_trips_with_inline_pies_and_with_pie_files(tmp_path: Path) -> None:
    req = request()
    body = json.loads(json.dumps(req.to_json()))
    assert set(body) == {
        "version",
        "batch_index",
        "start_block",
        "end_block",
        "rpc_url",
        "chain_id",
        "layout",
        "full_output",
        "use_kzg_da",
        "children",
    }
    assert set(body["children"][0]) == {"snos_batch_index", "start_block", "end_block", "os_output", "cairo_pie"}
    assert AggregatorRequest.from_json(body) == req
    files = []
    for child in req.children:
        path = tmp_path / f"{child.snos_batch_index}.zip"
        path.write_bytes(child.cairo_pie)
        files.append(str(path))
    by_file = json.loads(json.dumps(req.to_json(pie_files=files)))
    assert "cairo_pie" not in by_file["children"][0] and by_file["children"][0]["cairo_pie_file"] == files[0]
    assert AggregatorRequest.from_json(by_file) == req
    env = req.environment("/run/request.json", "/run/output")
    assert env["MADARA_AGGREGATOR_REQUEST"] == "/run/request.json" and env["MADARA_AGGREGATOR_USE_KZG_DA"] == "true"
    assert req.arguments("/run/request.json", "/run/output") == [
        "--request",
        "/run/request.json",
        "--output-dir",
        "/run/output",
    ]
    with pytest.raises(InvalidInput, match="children must be a non-empty array"):
        AggregatorRequest.from_json({**body, "children": []})
    with pytest.raises(InvalidInput, match=r"children\[0\]: start_block must be a non-negative integer"):
        AggregatorRequest.from_json({**body, "children": [{**body["children"][0], "start_block": -1}]})


def test_felts_json_and_failure_kinds() -> None:
    assert parse_felts_json(b'["0x1", "2", 3]', "f") == [1, 2, 3]
    for data, reason in ((b"{", "not valid JSON"), (b"{}", "expected a JSON array"), (b'["0xzz"]', "f")):
        with pytest.raises(DamagedAggregatorOutput, match=reason):
            parse_felts_json(data, "f")
    assert failure_kind("retryable") is ErrorKind.RETRYABLE
    assert failure_kind("os_failed") is failure_kind(None) is ErrorKind.FAILED
    with pytest.raises(JobError) as caught:
        raise_failure(ErrorKind.RETRYABLE, "later")
    assert caught.value.retryable
    with pytest.raises(JobError) as caught:
        raise_failure(ErrorKind.FAILED, "no")
    assert not caught.value.retryable
