"""The cost ledger's routes (not in the original): one aggregator batch with its cost,
``/batches/aggregator/{index}``, and the ledger of the latest batches with its sums, ``/cost?since=``
(engine/cost.py reads it, domain/cost.py adds it up)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from madara_orchestrator.domain.errors import InvalidInput, NotFound
from madara_orchestrator.engine.cost import MAX_LEDGER_BATCHES, CostLedger, ledger_json
from madara_orchestrator.engine.runtime import Runtime
from madara_orchestrator.server import models
from madara_orchestrator.server.http import INTEGER, MAX_NUMBER, Endpoint, Param, api, envelope, number
from madara_orchestrator.server.routes.batches import aggregator_batch_details

DEFAULT_LEDGER_BATCHES = 100


def ledger_of(request: Request) -> CostLedger:
    """The app's ledger reader (made once: it keeps the sizes of settled batches' files)."""
    state = request.app.state
    ledger: CostLedger | None = getattr(state, "cost_ledger", None)
    if ledger is None:
        ledger = new_ledger(api(request).runtime)
        state.cost_ledger = ledger
    return ledger


def new_ledger(runtime: Runtime) -> CostLedger:
    storage = runtime.storage
    return CostLedger(storage.db, storage.objects, settles_snos=not runtime.config.plan.aggregator_batches)


async def aggregator_batch_cost(request: Request) -> Response:
    raw = request.path_params["index"]
    index = number(raw)
    if index is None:
        raise InvalidInput(f"Invalid batch index: {raw} (an integer from 0 to {MAX_NUMBER})")
    batch = await api(request).runtime.storage.db.get_aggregator_batch(index)
    if batch is None:
        raise NotFound(f"Aggregator batch {index} not found")
    cost = await ledger_of(request).aggregator_batch(batch)
    return envelope(data={**aggregator_batch_details(batch), "cost": cost.to_json()})


async def cost_summary(request: Request) -> Response:
    params = request.query_params
    raw_limit = params.get("limit", str(DEFAULT_LEDGER_BATCHES))
    if not INTEGER.match(raw_limit) or len(raw_limit) > 6 or not 1 <= int(raw_limit) <= MAX_LEDGER_BATCHES:
        raise InvalidInput(f"Invalid query: limit must be an integer from 1 to {MAX_LEDGER_BATCHES}")
    runtime = api(request).runtime
    data = await ledger_json(
        ledger_of(request),
        since=params.get("since"),
        limit=int(raw_limit),
        aggregated=runtime.config.plan.aggregator_batches,
    )
    return envelope(data=data)


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            "/batches/aggregator/{index}",
            aggregator_batch_cost,
            "aggregatorBatchCost",
            "One aggregator batch and what it cost (the cost ledger's line)",
            "batches",
            data=models.AggregatorBatchCost,
            message=False,
            errors=(400, 404, 503),
            params=(
                Param("index", "path", models.BlockNumber, required=True, description="An aggregator batch index"),
            ),
        ),
        Endpoint(
            "/cost",
            cost_summary,
            "costLedger",
            "The cost ledger of the latest batches: per batch, the sums, and the fee per block over time",
            "batches",
            data=models.CostLedger,
            message=False,
            errors=(400, 503),
            params=(
                Param(
                    "since",
                    "query",
                    str,
                    description="From this batch index (digits) or ISO 8601 time (batches settled then or later)",
                ),
                Param(
                    "limit",
                    "query",
                    Annotated[int, Field(ge=1, le=MAX_LEDGER_BATCHES)],
                    description="The latest batches covered",
                    default=DEFAULT_LEDGER_BATCHES,
                ),
            ),
        ),
    ]
