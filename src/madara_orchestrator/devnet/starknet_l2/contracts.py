"""The double's built-in contracts: a Piltover core contract, an Integrity fact registry, and the dev accounts.

Each entry point takes a call context (the world it changes, the caller, the events it emits) and the call's
calldata, makes the checks the real contract makes, in its order and with its error strings, and raises
``_Revert`` with them.
"""

from __future__ import annotations

from collections.abc import Sequence

from madara_orchestrator.devnet.layout_bridge import (
    VerifierConfiguration,
    l2_fact,
    output_hash,
)
from madara_orchestrator.devnet.starknet_l2.abi import (
    _ADDRESS,
    _FELT,
    _SPAN,
    _U32,
    _abi_args,
    _at,
    _felts_of,
    deserialize_os_output,
)
from madara_orchestrator.devnet.starknet_l2.constants import (
    ACCOUNT_CLASS_HASH,
    APPCHAIN_TO_SN_MESSAGES_SELECTOR,
    CONSUME_MESSAGE_FROM_APPCHAIN_SELECTOR,
    CORE_CONTRACT_CLASS_HASH,
    EXECUTE_SELECTOR,
    FACT_REGISTERED_KEY,
    FACT_REGISTRY_CLASS_HASH,
    GET_ALL_VERIFICATIONS_SELECTOR,
    GET_FACTS_REGISTRY_SELECTOR,
    GET_PROGRAM_INFO_SELECTOR,
    GET_STATE_SELECTOR,
    GET_VERIFICATION_SELECTOR,
    LOG_STATE_UPDATE_KEY,
    MESSAGE_CONSUMED_KEY,
    MESSAGE_SENT_KEY,
    MESSAGE_TO_APPCHAIN_SEALED_KEY,
    MESSAGE_TO_STARKNET_RECEIVED_KEY,
    MIN_SECURITY_BITS,
    PROGRAM_INFO_CHANGED_KEY,
    REGISTER_FACT_SELECTOR,
    SEND_MESSAGE_TO_APPCHAIN_SELECTOR,
    SET_PROGRAM_INFO_SELECTOR,
    SN_TO_APPCHAIN_MESSAGES_SELECTOR,
    U32_BOUND,
    UPDATE_STATE_SELECTOR,
    DevAccount,
    ProgramInfo,
    message_hash_to_appchain,
    message_hash_to_starknet,
)
from madara_orchestrator.devnet.starknet_l2.model import ContractCall, CoreState, Event
from madara_orchestrator.devnet.starknet_l2.world import (
    MessageStatus,
    Verification,
    _add_verification,
    _CallContext,
    _Entrypoint,
    _Outcome,
    _Revert,
    _World,
)


class L2Contracts:
    """The contracts deployed on the double, by address: their class hashes and entry points."""

    def __init__(
        self, *, core_contract_address: int, fact_registry_address: int, accounts: Sequence[DevAccount]
    ) -> None:
        """``accounts[0]`` is the core contract's owner and operator, ``accounts[1]`` (if any) the fact
        registry's verifier."""
        self.core_contract_address = core_contract_address
        self.fact_registry_address = fact_registry_address
        self.operator = accounts[0]
        self.verifiers: tuple[DevAccount, ...] = tuple(accounts[1:2])
        self.deployed: dict[int, tuple[int, dict[int, _Entrypoint]]] = {
            core_contract_address: (
                CORE_CONTRACT_CLASS_HASH,
                {
                    UPDATE_STATE_SELECTOR: self._update_state,
                    GET_STATE_SELECTOR: self._get_state,
                    GET_PROGRAM_INFO_SELECTOR: self._get_program_info,
                    SET_PROGRAM_INFO_SELECTOR: self._set_program_info,
                    GET_FACTS_REGISTRY_SELECTOR: self._get_facts_registry,
                    SEND_MESSAGE_TO_APPCHAIN_SELECTOR: self._send_message_to_appchain,
                    SN_TO_APPCHAIN_MESSAGES_SELECTOR: self._sn_to_appchain_messages,
                    APPCHAIN_TO_SN_MESSAGES_SELECTOR: self._appchain_to_sn_messages,
                    CONSUME_MESSAGE_FROM_APPCHAIN_SELECTOR: self._consume_message_from_appchain,
                },
            ),
            fact_registry_address: (
                FACT_REGISTRY_CLASS_HASH,
                {
                    REGISTER_FACT_SELECTOR: self._register_fact,
                    GET_ALL_VERIFICATIONS_SELECTOR: self._get_all_verifications_for_fact_hash,
                    GET_VERIFICATION_SELECTOR: self._get_verification,
                },
            ),
        }
        for account in accounts:
            self.deployed[account.address] = (ACCOUNT_CLASS_HASH, {})

    # -- the Piltover core contract -------------------------------------------------------------------

    def _assert_owner_or_operator(self, ctx: _CallContext) -> None:
        """Piltover's config component: the owner or a registered operator (here both are the operator)."""
        if ctx.caller != self.operator.address:
            raise _Revert("Config: not owner or operator")

    def _update_state(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        """Piltover's ``update_state`` with the two spans of its current form, its checks in its order."""
        snos_output, layout_bridge_output = _abi_args(calldata, (_SPAN, _SPAN))
        self._assert_owner_or_operator(ctx)
        world = ctx.world
        info = world.program_info
        # The SNOS proof is bootloaded: its 3rd word is the program hash of the bootloaded program, SNOS.
        if _at(snos_output, 2) != info.snos_program_hash:
            raise _Revert("snos: invalid program hash")
        # The layout bridge is bootloaded too: its 3rd word is its program hash...
        if _at(layout_bridge_output, 2) != info.layout_bridge_program_hash:
            raise _Revert("lb: invalid program hash")
        # ... and its 5th the hash of the output it verified.
        if output_hash(snos_output) != _at(layout_bridge_output, 4):
            raise _Revert("snos: invalid output hash")
        os_output = deserialize_os_output(snos_output)
        if os_output.header.starknet_os_config_hash != info.snos_config_hash:
            raise _Revert("snos: invalid config hash")
        fact = l2_fact(info.bootloader_program_hash, layout_bridge_output)
        verifications = self._verifications_for(ctx, fact)
        if not verifications:
            raise _Revert("no fact registered")
        if not verifications[0].security_bits > MIN_SECURITY_BITS:
            raise _Revert(
                f"assertion failed: `*verifications.at(0).security_bits > {MIN_SECURITY_BITS}`.", panic="bytes"
            )
        # The state component's update.
        header = os_output.header
        if world.core.block_number != header.prev_block_number:
            raise _Revert("State: invalid block number")
        if world.core.state_root != header.initial_root:
            raise _Revert("State: invalid previous root")
        world.core = CoreState(
            state_root=header.final_root, block_number=header.new_block_number, block_hash=header.new_block_hash
        )
        # The messaging component: messages to Starknet become consumable, messages to the appchain are sealed.
        for to_l1 in os_output.messages_to_l1:
            message_hash = message_hash_to_starknet(to_l1.from_address, to_l1.to_address, to_l1.payload)
            self._emit(
                ctx,
                (MESSAGE_TO_STARKNET_RECEIVED_KEY, message_hash, to_l1.from_address, to_l1.to_address),
                (len(to_l1.payload), *to_l1.payload),
            )
            world.to_starknet[message_hash] = world.to_starknet.get(message_hash, 0) + 1
        for to_l2 in os_output.messages_to_l2:
            message_hash = message_hash_to_appchain(
                to_l2.from_address, to_l2.to_address, to_l2.selector, to_l2.payload, to_l2.nonce
            )
            status, nonce = world.to_appchain.get(message_hash, (MessageStatus.NOT_SENT, 0))
            if status is not MessageStatus.PENDING:
                raise _Revert("INVALID_MESSAGE_TO_SEAL")
            world.to_appchain[message_hash] = (MessageStatus.SEALED, nonce)
            self._emit(
                ctx,
                (MESSAGE_TO_APPCHAIN_SEALED_KEY, message_hash, to_l2.from_address, to_l2.to_address),
                (to_l2.selector, to_l2.nonce, len(to_l2.payload), *to_l2.payload),
            )
        world.update_state_count += 1
        self._emit(ctx, (LOG_STATE_UPDATE_KEY,), tuple(world.core.to_felts()))
        return []

    def _verifications_for(self, ctx: _CallContext, fact: int) -> list[Verification]:
        """``IFactRegistryDispatcher { contract_address: facts_registry }.get_all_verifications_for_fact_hash``:
        a call into the registry, its answer deserialized as Piltover's dispatcher does."""
        inner = _CallContext(world=ctx.world, caller=self.core_contract_address, events=ctx.events)
        call = ContractCall(to=self.fact_registry_address, selector=GET_ALL_VERIFICATIONS_SELECTOR, calldata=(fact,))
        answer = self.invoke(inner, call)
        too_short = _Revert("Returned data too short")
        if not answer or len(answer) < 1 + 6 * answer[0]:
            raise too_short
        verifications = []
        for index in range(answer[0]):
            words = answer[1 + 6 * index : 7 + 6 * index]
            if words[1] >= U32_BOUND:
                raise too_short
            verifications.append(
                Verification(
                    verification_hash=words[0],
                    security_bits=words[1],
                    verifier_config=VerifierConfiguration(*words[2:]),
                )
            )
        return verifications

    def _get_state(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        _abi_args(calldata, ())
        return ctx.world.core.to_felts()

    def _get_program_info(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        _abi_args(calldata, ())
        return ctx.world.program_info.to_felts()

    def _set_program_info(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        (words,) = _abi_args(calldata, (_felts_of(4),))
        self._assert_owner_or_operator(ctx)
        old = ctx.world.program_info
        ctx.world.program_info = ProgramInfo(
            bootloader_program_hash=words[0],
            snos_config_hash=words[1],
            snos_program_hash=words[2],
            layout_bridge_program_hash=words[3],
        )
        self._emit(
            ctx,
            (PROGRAM_INFO_CHANGED_KEY,),
            (ctx.caller, *old.to_felts(), *ctx.world.program_info.to_felts()),
        )
        return []

    def _get_facts_registry(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        _abi_args(calldata, ())
        return [self.fact_registry_address]

    def _send_message_to_appchain(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        to_address, selector, payload = _abi_args(calldata, (_ADDRESS, _FELT, _SPAN))
        world = ctx.world
        nonce = world.to_appchain_nonce
        world.to_appchain_nonce = nonce + 1
        message_hash = message_hash_to_appchain(ctx.caller, to_address, selector, payload, nonce)
        self._emit(
            ctx, (MESSAGE_SENT_KEY, message_hash, ctx.caller, to_address), (selector, nonce, len(payload), *payload)
        )
        world.to_appchain[message_hash] = (MessageStatus.PENDING, nonce)
        return [message_hash, nonce]

    def _sn_to_appchain_messages(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        (message_hash,) = _abi_args(calldata, (_FELT,))
        status, nonce = ctx.world.to_appchain.get(message_hash, (MessageStatus.NOT_SENT, 0))
        return [int(status), nonce] if status is MessageStatus.PENDING else [int(status)]

    def _appchain_to_sn_messages(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        (message_hash,) = _abi_args(calldata, (_FELT,))
        count = ctx.world.to_starknet.get(message_hash, 0)
        return [1, count] if count else [0]

    def _consume_message_from_appchain(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        from_address, payload = _abi_args(calldata, (_ADDRESS, _SPAN))
        message_hash = message_hash_to_starknet(from_address, ctx.caller, payload)
        count = ctx.world.to_starknet.get(message_hash, 0)
        if count == 0:
            raise _Revert("INVALID_MESSAGE_TO_CONSUME")
        self._emit(ctx, (MESSAGE_CONSUMED_KEY, message_hash, from_address, ctx.caller), (len(payload), *payload))
        ctx.world.to_starknet[message_hash] = count - 1
        return [message_hash]

    # -- the Integrity fact registry ------------------------------------------------------------------

    def _register_fact(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        """Integrity's ``register_fact(verifier_config, fact_hash, security_bits) -> FactRegistered``."""
        config_words, fact_hash, security_bits = _abi_args(calldata, (_felts_of(4), _FELT, _U32))
        if ctx.caller not in {v.address for v in self.verifiers}:
            raise _Revert(
                f"caller {ctx.caller:#x} is not a verifier: only verifier accounts register facts", panic="bytes"
            )
        config = VerifierConfiguration(*config_words)
        vhash = _add_verification(ctx.world, fact_hash, security_bits, config)
        registered = (fact_hash, 0, security_bits, *config.to_felts(), vhash)
        self._emit(ctx, (FACT_REGISTERED_KEY, *registered), (), address=self.fact_registry_address)
        return list(registered)

    def _get_all_verifications_for_fact_hash(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        (fact_hash,) = _abi_args(calldata, (_FELT,))
        verifications = ctx.world.verifications.get(fact_hash, ())
        return [len(verifications), *(felt for v in verifications for felt in v.to_felts())]

    def _get_verification(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        """``Option<Verification>``: ``[0, fact_hash, security_bits, *config]`` (Some) or ``[1]`` (None)."""
        (wanted,) = _abi_args(calldata, (_FELT,))
        for fact_hash, verifications in ctx.world.verifications.items():
            for v in verifications:
                if v.verification_hash == wanted:
                    return [0, fact_hash, v.security_bits, *v.verifier_config.to_felts()]
        return [1]

    # -- running calls ----------------------------------------------------------------------------------

    def _emit(
        self, ctx: _CallContext, keys: tuple[int, ...], data: tuple[int, ...], *, address: int | None = None
    ) -> None:
        from_address = self.core_contract_address if address is None else address
        ctx.events.append(Event(from_address=from_address, keys=keys, data=data))

    def invoke(self, ctx: _CallContext, call: ContractCall) -> list[int]:
        """Run one call; raises ``_Revert`` with Starknet's wording for a missing contract or entry point."""
        contract = self.deployed.get(call.to)
        if contract is None:
            raise _Revert(f"Requested contract address {call.to:#066x} is not deployed.", panic="none")
        entrypoint = contract[1].get(call.selector)
        if entrypoint is None:
            raise _Revert(f"Entry point EntryPointSelector({call.selector:#066x}) not found in contract.", panic="none")
        return entrypoint(ctx, call.calldata)

    def execute(self, world: _World, sender: int, calls: Sequence[ContractCall]) -> _Outcome:
        """Run an account's calls on a copy of ``world``: all of them take effect, or none (a revert)."""
        scratch = world.copy()
        ctx = _CallContext(world=scratch, caller=sender, events=[])
        for call in calls:
            try:
                self.invoke(ctx, call)
            except _Revert as failure:
                class_hash = self.deployed.get(call.to, (0, {}))[0]
                reason = (
                    "Transaction execution has failed:\n"
                    f"0: Error in the called contract (contract address: {sender:#066x}, "
                    f"class hash: {ACCOUNT_CLASS_HASH:#066x}, selector: {EXECUTE_SELECTOR:#066x}):\n"
                    f"1: Error in the called contract (contract address: {call.to:#066x}, "
                    f"class hash: {class_hash:#066x}, selector: {call.selector:#066x}):\n"
                    f"Execution failed. Failure reason: {failure}."
                )
                return _Outcome(world=world.copy(), events=(), revert_reason=reason)
        return _Outcome(world=scratch, events=tuple(ctx.events), revert_reason=None)
