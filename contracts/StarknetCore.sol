// SPDX-License-Identifier: Apache-2.0
// Devnet Starknet core contract: the subset of the real core contract's interface that the orchestrator
// uses, with the checks that make a devnet settlement meaningful:
//   - the fact keccak256(programHash, keccak256(programOutput)) is valid in the fact registry;
//   - updateStateKzgDA: the output's use_kzg_da flag is set, and for each blob i the transaction's blob
//     versioned hash blobhash(i) is the versioned hash of the KZG commitment in the output, and the
//     point-evaluation precompile (0x0a) accepts (versioned hash, x_0, y_i, commitment_i, proof_i);
//   - updateState (calldata DA): the use_kzg_da flag is clear;
//   - the block number advances: the output's previous block number is stateBlockNumber (-1 at genesis)
//     and its new block number is greater; after genesis the previous root and block hash must match too.
//
// Program output layout (Starknet OS >= 0.13.2, SPEC section 6.6), one felt per uint256:
//   [0] initial_root, [1] final_root, [2] prev_block_number, [3] new_block_number, [4] prev_block_hash,
//   [5] new_block_hash, [6] os_program_hash, [7] starknet_os_config_hash, [8] use_kzg_da, [9] full_output,
//   then with KZG DA: [10] x_0 (z), [11] n_blobs, 2 felts per blob for the 48-byte commitments
//   (low 192 bits first, then high 192 bits: commitment = high || low), 2 felts per blob for y
//   (low 128 bits first, then high 128 bits), then the rest (messages, state diff, ...).
//
// Compiled by scripts/build_contracts.py into src/madara_orchestrator/settlement/contracts/StarknetCore.json.
pragma solidity 0.8.30;

interface IFactRegistry {
    function isValid(bytes32 fact) external view returns (bool);
}

contract StarknetCore {
    event LogStateUpdate(uint256 globalRoot, int256 blockNumber, uint256 blockHash);
    event LogStateTransitionFact(bytes32 stateTransitionFact);

    // Starknet field prime: 2^251 + 17 * 2^192 + 1. A felt above P/2 stands for a negative number (P - 1 is -1).
    uint256 internal constant FELT_PRIME = 0x800000000000011000000000000000000000000000000000000000000000001;
    uint256 internal constant BLS_MODULUS =
        52435875175126190479447740508185965837690552500527637822603658699938581184513;
    uint256 internal constant FIELD_ELEMENTS_PER_BLOB = 4096;
    address internal constant POINT_EVALUATION_PRECOMPILE = address(0x0a);
    bytes1 internal constant VERSIONED_HASH_VERSION_KZG = 0x01;

    uint256 internal constant INITIAL_ROOT_OFFSET = 0;
    uint256 internal constant FINAL_ROOT_OFFSET = 1;
    uint256 internal constant PREV_BLOCK_NUMBER_OFFSET = 2;
    uint256 internal constant NEW_BLOCK_NUMBER_OFFSET = 3;
    uint256 internal constant PREV_BLOCK_HASH_OFFSET = 4;
    uint256 internal constant NEW_BLOCK_HASH_OFFSET = 5;
    uint256 internal constant CONFIG_HASH_OFFSET = 7;
    uint256 internal constant USE_KZG_DA_OFFSET = 8;
    uint256 internal constant HEADER_SIZE = 10;
    uint256 internal constant KZG_Z_OFFSET = HEADER_SIZE;
    uint256 internal constant KZG_N_BLOBS_OFFSET = HEADER_SIZE + 1;
    uint256 internal constant KZG_COMMITMENTS_OFFSET = HEADER_SIZE + 2;
    uint256 internal constant MAX_BLOBS = 9;

    IFactRegistry public immutable factRegistry;
    uint256 public immutable programHash;
    uint256 public immutable configHash;

    uint256 public stateRoot;
    int256 public stateBlockNumber;
    uint256 public stateBlockHash;

    /// `configHash_` 0 accepts any starknet_os_config_hash in the output.
    constructor(address factRegistry_, uint256 programHash_, uint256 configHash_) {
        factRegistry = IFactRegistry(factRegistry_);
        programHash = programHash_;
        configHash = configHash_;
        stateBlockNumber = -1;
    }

    function updateState(uint256[] calldata programOutput, uint256 onchainDataHash, uint256 onchainDataSize)
        external
    {
        onchainDataHash;
        onchainDataSize;
        require(programOutput.length >= HEADER_SIZE, "PROGRAM_OUTPUT_TOO_SHORT");
        require(programOutput[USE_KZG_DA_OFFSET] == 0, "UNEXPECTED_KZG_DA_FLAG");
        checkFactAndAdvance(programOutput);
    }

    function updateStateKzgDA(uint256[] calldata programOutput, bytes[] calldata kzgProofs) external {
        require(programOutput.length > KZG_N_BLOBS_OFFSET, "PROGRAM_OUTPUT_TOO_SHORT");
        require(programOutput[USE_KZG_DA_OFFSET] == 1, "KZG_DA_FLAG_NOT_SET");
        verifyKzgProofs(programOutput, kzgProofs);
        checkFactAndAdvance(programOutput);
    }

    function verifyKzgProofs(uint256[] calldata programOutput, bytes[] calldata kzgProofs) internal view {
        uint256 z = programOutput[KZG_Z_OFFSET];
        uint256 nBlobs = programOutput[KZG_N_BLOBS_OFFSET];
        require(nBlobs > 0 && nBlobs <= MAX_BLOBS, "INVALID_N_BLOBS");
        require(kzgProofs.length == nBlobs, "INVALID_NUMBER_OF_KZG_PROOFS");
        require(programOutput.length >= KZG_COMMITMENTS_OFFSET + 4 * nBlobs, "PROGRAM_OUTPUT_TOO_SHORT");
        require(blobhash(nBlobs) == bytes32(0), "UNEXPECTED_EXTRA_BLOB");
        for (uint256 i = 0; i < nBlobs; i++) {
            verifyBlob(programOutput, kzgProofs[i], z, nBlobs, i);
        }
    }

    function verifyBlob(uint256[] calldata programOutput, bytes calldata proof, uint256 z, uint256 nBlobs, uint256 i)
        internal
        view
    {
        bytes memory commitment = kzgCommitment(programOutput, i);
        bytes32 blobHash = blobhash(i);
        require(blobHash != bytes32(0), "MISSING_BLOB");
        require(blobHash == versionedHash(commitment), "BLOB_HASH_MISMATCH");
        require(proof.length == 48, "INVALID_KZG_PROOF_SIZE");
        uint256 y = blobEvaluation(programOutput, nBlobs, i);
        pointEvaluation(abi.encodePacked(blobHash, z, y, commitment, proof));
    }

    function blobEvaluation(uint256[] calldata programOutput, uint256 nBlobs, uint256 i)
        internal
        pure
        returns (uint256)
    {
        uint256 evaluationsOffset = KZG_COMMITMENTS_OFFSET + 2 * nBlobs;
        uint256 yLow = programOutput[evaluationsOffset + 2 * i];
        uint256 yHigh = programOutput[evaluationsOffset + 2 * i + 1];
        require(yLow <= type(uint128).max && yHigh <= type(uint128).max, "INVALID_Y_VALUE");
        return (yHigh << 128) + yLow;
    }

    function pointEvaluation(bytes memory input) internal view {
        (bool ok, bytes memory result) = POINT_EVALUATION_PRECOMPILE.staticcall(input);
        require(ok, "POINT_EVALUATION_PRECOMPILE_CALL_FAILED");
        require(result.length == 64, "POINT_EVALUATION_PRECOMPILE_WRONG_OUTPUT");
        (uint256 fieldElements, uint256 modulus) = abi.decode(result, (uint256, uint256));
        require(
            fieldElements == FIELD_ELEMENTS_PER_BLOB && modulus == BLS_MODULUS, "POINT_EVALUATION_PRECOMPILE_WRONG_OUTPUT"
        );
    }

    function kzgCommitment(uint256[] calldata programOutput, uint256 i) internal pure returns (bytes memory) {
        uint256 low = programOutput[KZG_COMMITMENTS_OFFSET + 2 * i];
        uint256 high = programOutput[KZG_COMMITMENTS_OFFSET + 2 * i + 1];
        require(low <= type(uint192).max && high <= type(uint192).max, "INVALID_KZG_COMMITMENT");
        return abi.encodePacked(uint192(high), uint192(low));
    }

    function versionedHash(bytes memory commitment) internal pure returns (bytes32) {
        bytes32 digest = sha256(commitment);
        return (digest & ~bytes32(bytes1(0xff))) | bytes32(VERSIONED_HASH_VERSION_KZG);
    }

    function feltToInt(uint256 felt) internal pure returns (int256) {
        require(felt < FELT_PRIME, "VALUE_OUT_OF_FELT_RANGE");
        if (felt > FELT_PRIME / 2) {
            return -int256(FELT_PRIME - felt);
        }
        return int256(felt);
    }

    function checkFactAndAdvance(uint256[] calldata programOutput) internal {
        bytes32 outputHash = keccak256(abi.encodePacked(programOutput));
        bytes32 fact = keccak256(abi.encodePacked(programHash, outputHash));
        require(factRegistry.isValid(fact), "NO_STATE_TRANSITION_PROOF");
        if (configHash != 0) {
            require(programOutput[CONFIG_HASH_OFFSET] == configHash, "INVALID_CONFIG_HASH");
        }
        int256 prevBlockNumber = feltToInt(programOutput[PREV_BLOCK_NUMBER_OFFSET]);
        int256 newBlockNumber = feltToInt(programOutput[NEW_BLOCK_NUMBER_OFFSET]);
        require(prevBlockNumber == stateBlockNumber, "INVALID_PREV_BLOCK_NUMBER");
        require(newBlockNumber > prevBlockNumber, "INVALID_NEW_BLOCK_NUMBER");
        if (stateBlockNumber != -1) {
            require(programOutput[INITIAL_ROOT_OFFSET] == stateRoot, "INVALID_PREVIOUS_ROOT");
            require(programOutput[PREV_BLOCK_HASH_OFFSET] == stateBlockHash, "INVALID_PREV_BLOCK_HASH");
        }
        stateRoot = programOutput[FINAL_ROOT_OFFSET];
        stateBlockNumber = newBlockNumber;
        stateBlockHash = programOutput[NEW_BLOCK_HASH_OFFSET];
        emit LogStateTransitionFact(fact);
        emit LogStateUpdate(stateRoot, stateBlockNumber, stateBlockHash);
    }
}
