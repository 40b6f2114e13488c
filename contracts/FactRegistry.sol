// SPDX-License-Identifier: Apache-2.0
// Devnet fact registry: the mock prover registers the fact of each proven program output here, and the
// devnet core contract refuses a state update whose fact is not registered.
// Compiled by scripts/build_contracts.py into src/madara_orchestrator/settlement/contracts/FactRegistry.json.
pragma solidity 0.8.30;

contract FactRegistry {
    event FactRegistered(bytes32 indexed fact);

    mapping(bytes32 => bool) private verifiedFacts;
    uint256 public factCount;

    /// Marks `fact` valid. Registering a fact twice is a no-op (no second event).
    function registerFact(bytes32 fact) external {
        if (verifiedFacts[fact]) {
            return;
        }
        verifiedFacts[fact] = true;
        factCount += 1;
        emit FactRegistered(fact);
    }

    function isValid(bytes32 fact) external view returns (bool) {
        return verifiedFacts[fact];
    }
}
