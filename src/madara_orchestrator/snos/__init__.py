"""SNOS runners that run the Starknet OS outside this process (``--snos-runner command|http``).

``contract`` holds what both modes share: the request, the exit codes and error kinds, and the checks
every output passes before a SnosRun job completes. The contract is written down in
``docs/snos-runner.md``.
"""
