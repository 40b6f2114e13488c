"""Aggregator runners that run StarkWare's aggregator program outside this process
(``--aggregator-runner command|http``), for the provers that do not aggregate themselves (SHARP, mock).

``contract`` holds what both modes share: the request, the exit codes and error kinds, and the checks
every output passes before an Aggregator job submits it. The contract is written down in
``docs/aggregator-runner.md``; the process and HTTP machinery is the SNOS runners' (``runners/``).
"""
