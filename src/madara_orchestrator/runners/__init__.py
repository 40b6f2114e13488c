"""What the runners outside this process share (SNOS: ``snos/``, the aggregator: ``aggregator/``).

``process`` starts a command in a fresh directory and process group of its own, with the orchestrator's
variables removed from its environment, bounds it with a timeout (SIGTERM, then SIGKILL, to the whole
group) and reads the end of its stderr; ``http`` posts a run to a runner service and sorts the answer
into a result, a failure of the run, a retry or an outage.
"""
