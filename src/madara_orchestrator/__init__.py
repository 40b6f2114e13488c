"""Madara orchestrator: carries Starknet appchain blocks from "produced" to "settled"."""

ORCHESTRATOR_VERSION = "0.1.0"
"""The original's crate version: stamped on jobs, batches and queue messages (SPEC §2.2, §3.3)."""

__version__ = ORCHESTRATOR_VERSION
