"""The HTTP API's OpenAPI 3.1 document, served at ``GET /openapi.json``.

Built here rather than kept as a JSON file so the enums (job types and statuses, batch statuses) come from
the domain and cannot drift. Admin routes (and their bearer scheme) are in the document only when the app
mounts them. ``tests/e2e/test_openapi.py`` runs schemathesis against a served instance with this document.
"""

from __future__ import annotations

from typing import Any

from madara_orchestrator.domain.batches import WEIGHT_FIELDS, AggregatorBatchStatus, SnosBatchStatus
from madara_orchestrator.domain.health import HealthStatus
from madara_orchestrator.domain.jobs import JobStatus, JobType
from madara_orchestrator.domain.lag import LagLevel
from madara_orchestrator.provers.atlantic import AtlanticQueryStatus

Schema = dict[str, Any]

MAX_NUMBER = 2**63 - 1
JSON = "application/json"
TEXT = "text/plain"


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(props: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    return {
        "type": "object",
        "required": [name for name in props if name not in optional],
        "properties": props,
    }


INT = {"type": "integer"}
NON_NEGATIVE = {"type": "integer", "minimum": 0}
NUMBER = {"type": "number"}
STRING = {"type": "string"}
BOOL = {"type": "boolean"}
SECONDS = _nullable(INT)
"""Unix seconds, or null."""


def _enum(values: Any) -> Schema:
    return {"type": "string", "enum": [str(v) for v in values]}


def _ok(data: Schema | None = None, *, message: bool = True) -> Schema:
    """The success envelope: ``data`` when given, ``message`` when the route sends one."""
    props: Schema = {"success": {"const": True}}
    if data is not None:
        props["data"] = data
    if message:
        props["message"] = STRING
    return {"type": "object", "required": list(props), "properties": props}


def _schemas() -> dict[str, Schema]:
    weights = _obj({name: NON_NEGATIVE for name in WEIGHT_FIELDS})
    timestamps = _obj(
        {
            "process_started_at": SECONDS,
            "process_completed_at": SECONDS,
            "verification_started_at": SECONDS,
            "verification_completed_at": SECONDS,
        }
    )
    job_summary = _obj(
        {
            "job_type": _ref("JobType"),
            "id": {"type": "string", "format": "uuid"},
            "status": _ref("JobStatus"),
            "start_block": _nullable(NON_NEGATIVE),
            "end_block": _nullable(NON_NEGATIVE),
        }
    )
    job_snapshot = _obj(
        {
            "job_type": _ref("JobType"),
            "id": {"type": "string", "format": "uuid"},
            "status": _ref("JobStatus"),
            "internal_id": NON_NEGATIVE,
            "created_at": SECONDS,
            "updated_at": SECONDS,
            "timestamps": _ref("JobTimestamps"),
        }
    )
    job_document = _obj(
        {
            "id": {"type": "string", "format": "uuid"},
            "internal_id": NON_NEGATIVE,
            "job_type": _ref("JobType"),
            "status": _ref("JobStatus"),
            "external_id": STRING,
            "metadata": _obj({"common": {"type": "object"}, "specific": _obj({"type": STRING})}),
            "version": NON_NEGATIVE,
            "created_at": SECONDS,
            "updated_at": SECONDS,
            "lease": _nullable(_obj({"owner": STRING, "expires_at": _nullable(NUMBER)})),
        }
    )
    snos_batch = _obj(
        {
            "index": NON_NEGATIVE,
            "aggregator_batch_index": _nullable(NON_NEGATIVE),
            "start_block": NON_NEGATIVE,
            "end_block": NON_NEGATIVE,
            "status": _enum(SnosBatchStatus),
            "created_at": SECONDS,
            "updated_at": SECONDS,
            "metrics": _obj({"state_diff_size": NON_NEGATIVE, "sierra_gas": NON_NEGATIVE, "proving_gas": NON_NEGATIVE}),
            "builtin_weights": _ref("BouncerWeights"),
        }
    )
    aggregator_batch = _obj(
        {
            "index": NON_NEGATIVE,
            "start_block": NON_NEGATIVE,
            "end_block": NON_NEGATIVE,
            "aggregator_input_size_upper_bound": NON_NEGATIVE,
            "status": _enum(AggregatorBatchStatus),
            "created_at": SECONDS,
            "updated_at": SECONDS,
            "blob_len": NON_NEGATIVE,
            "builtin_weights": _ref("BouncerWeights"),
        }
    )
    settlement_status = _obj(
        {
            "block_number": NON_NEGATIVE,
            "snos_batch": _nullable(_ref("SnosBatchDetails")),
            "aggregator_batch": _nullable(_ref("AggregatorBatchDetails")),
            "block_jobs": {"type": "array", "items": _ref("JobSnapshot")},
            "aggregator_proof_jobs": {"type": "array", "items": _ref("JobSnapshot")},
        }
    )
    bulk = _obj(
        {
            "success_count": NON_NEGATIVE,
            "successful_job_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
            "failed_count": NON_NEGATIVE,
            "failed_job_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
        }
    )
    fill = {"type": "array", "items": _obj({"name": STRING, "used": NON_NEGATIVE, "limit": NON_NEGATIVE})}
    batch_row_common: dict[str, Schema] = {
        "index": NON_NEGATIVE,
        "start_block": NON_NEGATIVE,
        "end_block": NON_NEGATIVE,
        "blocks": NON_NEGATIVE,
        "age_s": {"type": "number", "minimum": 0},
        "max_age_s": NUMBER,
        "weights": fill,
        "created_at": NUMBER,
        "updated_at": NUMBER,
    }
    dashboard_snos_batch = _obj(
        {
            **batch_row_common,
            "status": _enum(SnosBatchStatus),
            "aggregator_batch_index": _nullable(NON_NEGATIVE),
            "max_blocks": NON_NEGATIVE,
        }
    )
    dashboard_aggregator_batch = _obj(
        {
            **batch_row_common,
            "status": _enum(AggregatorBatchStatus),
            "max_blocks": NON_NEGATIVE,
            "blob_felts": NON_NEGATIVE,
            "max_blob_felts": INT,
            "input_size": NON_NEGATIVE,
            "max_input_size": NON_NEGATIVE,
        }
    )
    dashboard_job = _obj(
        {
            "id": {"type": "string", "format": "uuid"},
            "job_type": _ref("JobType"),
            "internal_id": NON_NEGATIVE,
            "status": _ref("JobStatus"),
            "external_id": _nullable(STRING),
            "start_block": _nullable(NON_NEGATIVE),
            "end_block": _nullable(NON_NEGATIVE),
            "attempts": _obj(
                {
                    "process": NON_NEGATIVE,
                    "process_retry": NON_NEGATIVE,
                    "verification": NON_NEGATIVE,
                    "verification_retry": NON_NEGATIVE,
                }
            ),
            "created_at": NUMBER,
            "updated_at": NUMBER,
            "timestamps": _ref("JobTimestamps"),
            "failure_reason": _nullable(STRING),
            "previous_failure_reasons": {"type": "array", "items": STRING},
            "waiting_since": SECONDS,
        }
    )
    settlement_tx = _obj(
        {
            "job_id": {"type": "string", "format": "uuid"},
            "batch": INT,
            "status": _ref("JobStatus"),
            "start_block": _nullable(NON_NEGATIVE),
            "end_block": _nullable(NON_NEGATIVE),
            "tx_hash": _nullable(STRING),
            "tx_nonce": _nullable(INT),
            "fee_wei": _nullable(NON_NEGATIVE),
            "attempts": {"type": "array", "items": {"type": "object"}},
            "settled_at": SECONDS,
        }
    )
    errors = {"type": "array", "items": STRING}
    rows = {
        "aggregator": {"type": "array", "items": _ref("DashboardAggregatorBatch")},
        "snos": {"type": "array", "items": _ref("DashboardSnosBatch")},
    }
    stage = _obj(
        {
            "through": _nullable(INT),
            "highest": _nullable(INT),
            "first_open": _nullable(
                _obj(
                    {
                        "job_type": _ref("JobType"),
                        "internal_id": NON_NEGATIVE,
                        "status": _ref("JobStatus"),
                        "start_block": _nullable(NON_NEGATIVE),
                    }
                )
            ),
        }
    )
    overview = _obj(
        {
            "now": NUMBER,
            "admin_enabled": BOOL,
            "head": _nullable(NON_NEGATIVE),
            "settled": _nullable(NON_NEGATIVE),
            "errors": errors,
            "failing_triggers": {
                "type": "array",
                "items": _obj(
                    {
                        "trigger": STRING,
                        "failures": NON_NEGATIVE,
                        "failing_since": _nullable(NUMBER),
                        "last_error": _nullable(STRING),
                        "outage": BOOL,
                    }
                ),
            },
            "batching_failing": BOOL,
            "batched_through": _nullable(NON_NEGATIVE),
            "stages": _obj({name: stage for name in ("snos", "proof", "aggregation", "settlement")}),
            "lag": _obj(
                {
                    "blocks": _nullable(NON_NEGATIVE),
                    "seconds": _nullable({"type": "number", "minimum": 0}),
                    "level": _enum(LagLevel),
                    "normal_blocks": NON_NEGATIVE,
                    "normal_seconds": {"type": "number", "minimum": 0},
                }
            ),
            "attention": _obj(
                {
                    "total": NON_NEGATIVE,
                    "by_status": {
                        "type": "object",
                        "propertyNames": _ref("JobStatus"),
                        "additionalProperties": NON_NEGATIVE,
                    },
                    "waiting": NON_NEGATIVE,
                }
            ),
            "open_batches": _obj(rows),
            "recent_batches": _obj(rows),
            "job_counts": {
                "type": "object",
                "propertyNames": _ref("JobType"),
                "additionalProperties": {
                    "type": "object",
                    "propertyNames": _ref("JobStatus"),
                    "additionalProperties": NON_NEGATIVE,
                },
            },
            "settlements": {
                "type": "array",
                "items": _obj(
                    {
                        "batch": INT,
                        "start_block": _nullable(NON_NEGATIVE),
                        "end_block": NON_NEGATIVE,
                        "at": NUMBER,
                        "fee_wei": _nullable(NON_NEGATIVE),
                        "tx_hash": _nullable(STRING),
                    }
                ),
            },
            "fees": _obj(
                {
                    "window": NON_NEGATIVE,
                    "with_fee": NON_NEGATIVE,
                    "total_wei": _nullable(NON_NEGATIVE),
                    "unit": _enum(["ETH", "STRK"]),
                    "blocks": NON_NEGATIVE,
                    "per_block_wei": _nullable(NON_NEGATIVE),
                    "blob_fill": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
                    "blob_batches": NON_NEGATIVE,
                }
            ),
        }
    )
    block_view = _obj(
        {
            "block_number": NON_NEGATIVE,
            "head": _nullable(NON_NEGATIVE),
            "settled": _nullable(NON_NEGATIVE),
            "is_settled": BOOL,
            "errors": errors,
            "snos_batch": _nullable(_ref("DashboardSnosBatch")),
            "aggregator_batch": _nullable(_ref("DashboardAggregatorBatch")),
            "jobs": {"type": "array", "items": _ref("DashboardJob")},
            "settlement_txs": {"type": "array", "items": _ref("SettlementTx")},
        }
    )
    backend = _obj({"up": BOOL, "error": _nullable(STRING)})
    trigger = _obj(
        {
            "failing": BOOL,
            "consecutive_failures": NON_NEGATIVE,
            "failing_since": _nullable(NUMBER),
            "last_failure_at": _nullable(NUMBER),
            "last_error": _nullable(STRING),
            "outage": BOOL,
            "next_try_in_s": _nullable({"type": "number", "minimum": 0}),
        }
    )
    return {
        "Error": {
            "type": "object",
            "description": "The error envelope.",
            "required": ["success", "message"],
            "properties": {"success": {"const": False}, "message": STRING},
            "additionalProperties": False,
        },
        "JobType": _enum(JobType),
        "JobStatus": _enum(JobStatus),
        "JobTimestamps": timestamps,
        "JobSummary": job_summary,
        "JobSnapshot": job_snapshot,
        "JobDocument": job_document,
        "BouncerWeights": weights,
        "SnosBatchDetails": snos_batch,
        "AggregatorBatchDetails": aggregator_batch,
        "BlockSettlementStatus": settlement_status,
        "BulkResult": bulk,
        "Health": _obj(
            {
                "status": _enum(HealthStatus),
                "backends": {"type": "object", "additionalProperties": backend},
                "triggers": {"type": "object", "additionalProperties": trigger},
                "problems": {"type": "array", "items": STRING},
                "head": _nullable(NON_NEGATIVE),
                "settled": _nullable(NON_NEGATIVE),
            }
        ),
        "DashboardSnosBatch": dashboard_snos_batch,
        "DashboardAggregatorBatch": dashboard_aggregator_batch,
        "DashboardJob": dashboard_job,
        "SettlementTx": settlement_tx,
        "DashboardOverview": overview,
        "DashboardBlock": block_view,
    }


ERROR_TEXT = {
    400: "Bad request: a malformed parameter, or (job routes) the job service refused",
    401: "Missing or wrong admin token",
    404: "Not found",
    405: "Method not allowed (a job control route: use POST with the admin token)",
    409: "Conflict with the job's or batch's state",
    413: "Request body larger than 1 MiB",
    429: "Priority queue is full",
    503: "A backend (database) is unavailable",
}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _responses(ok: Schema, *errors: int, ok_text: str = "Success") -> Schema:
    out: Schema = {"200": _json(ok, ok_text)}
    for status in sorted(errors):
        out[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    return out


def _block_param() -> Schema:
    return {
        "name": "n",
        "in": "path",
        "required": True,
        "description": "A block number",
        "schema": {"type": "integer", "format": "int64", "minimum": 0, "maximum": MAX_NUMBER},
    }


JOB_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The job's id",
    "schema": {"type": "string", "format": "uuid"},
}
PRIORITY = {
    "name": "priority",
    "in": "query",
    "required": False,
    "description": "Queue on the priority queue (429 when it is full)",
    "schema": {"type": "boolean", "default": False},
}
JOB_TYPES = {
    "name": "job_type",
    "in": "query",
    "required": False,
    "description": "Only jobs of these types (repeat the key); all types when absent",
    "style": "form",
    "explode": True,
    "schema": {"type": "array", "items": _ref("JobType")},
}


WEBHOOK_BODY: Schema = {
    "required": True,
    "content": {
        JSON: {
            "schema": _obj(
                {
                    "atlanticQueryId": {"type": "string", "minLength": 1, "pattern": r"\S"},
                    "status": _enum(AtlanticQueryStatus),
                    "bucketId": _nullable(STRING),
                    "step": _nullable(STRING),
                    "errorReason": _nullable(STRING),
                },
                optional=("bucketId", "step", "errorReason"),
            )
        }
    },
}
WEBHOOK_RESPONSES = _responses(
    _ok(_obj({"woken_job_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}}})),
    400,
    401,
    404,
    413,
    503,
)


def _batch_params(status_enum: Any) -> list[Schema]:
    names = [str(s) for s in status_enum]
    return [
        {
            "name": "index",
            "in": "query",
            "required": False,
            "description": "Only the batch with this index",
            "schema": {"type": "integer", "format": "int64", "minimum": 0, "maximum": MAX_NUMBER},
        },
        {
            "name": "status",
            "in": "query",
            "required": False,
            "description": "A batch status (case-insensitive), or `closed` for every status but Open",
            "schema": {"type": "string", "enum": [*names, "closed"]},
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
        },
        {
            "name": "sort",
            "in": "query",
            "required": False,
            "description": "By index (case-insensitive)",
            "schema": {"type": "string", "enum": ["asc", "desc"], "default": "asc"},
        },
    ]


def _job_paths(prefix: str, *, admin_enabled: bool) -> dict[str, Schema]:
    tag = ["jobs"]
    paths: dict[str, Schema] = {
        prefix + "/jobs": {
            "get": {
                "tags": tag,
                "operationId": f"jobsByStatus{prefix.replace('/', '_')}",
                "summary": "All jobs with a status",
                "parameters": [
                    {"name": "status", "in": "query", "required": True, "schema": _ref("JobStatus")},
                ],
                "responses": _responses(_ok(_obj({"jobs": {"type": "array", "items": _ref("JobSummary")}})), 400, 503),
            }
        },
        prefix + "/jobs/block/{n}/status": {
            "get": {
                "tags": tag,
                "operationId": f"jobsForBlock{prefix.replace('/', '_')}",
                "summary": "The jobs that cover a block",
                "parameters": [_block_param()],
                "responses": _responses(_ok(_obj({"jobs": {"type": "array", "items": _ref("JobSummary")}})), 400, 503),
            }
        },
        prefix + "/jobs/{id}": {
            "get": {
                "tags": tag,
                "operationId": f"showJob{prefix.replace('/', '_')}",
                "summary": "One job's document (400 'Processing error: Job not found' when there is none)",
                "parameters": [JOB_ID],
                "responses": _responses(_ok(_ref("JobDocument"), message=False), 400, 503),
            }
        },
    }
    security: Schema = {"security": [{"adminToken": []}]} if admin_enabled else {}
    for action, what in (("process", "processing"), ("verify", "verification"), ("retry", "retry")):
        paths[f"{prefix}/jobs/{{id}}/{action}"] = {
            "post": {
                "tags": tag,
                **security,
                "operationId": f"{action}Job{prefix.replace('/', '_')}",
                "summary": f"Queue a job for {what} (admin token; 400 without --admin-enabled)",
                "parameters": [JOB_ID, PRIORITY],
                "responses": _responses(_ok(), 400, 401, 413, 429, 503),
            },
            "get": {
                "tags": tag,
                "operationId": f"{action}JobGet{prefix.replace('/', '_')}",
                "summary": "The original's GET: read-only here, answered 405 saying to use POST with the admin token",
                "parameters": [{**JOB_ID, "schema": STRING}],
                "responses": {"405": {"$ref": "#/components/responses/E405"}},
            },
        }
    return paths


def openapi_document(*, admin_enabled: bool) -> dict[str, Any]:
    text_ok = {"description": "Plain text", "content": {TEXT: {"schema": STRING}}}
    health_body = {TEXT: {"schema": STRING}, JSON: {"schema": _ref("Health")}}
    paths: dict[str, Schema] = {
        "/health": {
            "get": {
                "tags": ["ops"],
                "operationId": "health",
                "summary": "Readiness: `UP`; `DEGRADED` or `DOWN` and one line per problem",
                "description": "`DOWN`: a backend does not answer. `DEGRADED`: the backends answer, but a trigger "
                "keeps failing or the settled block is above the sequencer's head. JSON (`Health`) with "
                "`Accept: application/json`, else plain text.",
                "responses": {
                    "200": {"description": "Every backend answers and nothing keeps failing", "content": health_body},
                    "503": {"description": "DEGRADED or DOWN", "content": health_body},
                },
            }
        },
        "/health/live": {
            "get": {"tags": ["ops"], "operationId": "live", "summary": "Liveness", "responses": {"200": text_ok}}
        },
        "/metrics": {
            "get": {
                "tags": ["ops"],
                "operationId": "metrics",
                "summary": "Prometheus text exposition",
                "responses": {"200": text_ok},
            }
        },
        "/openapi.json": {
            "get": {
                "tags": ["ops"],
                "operationId": "openapi",
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "The OpenAPI document")},
            }
        },
        "/webhooks/atlantic": {
            "post": {
                "tags": ["provers"],
                "operationId": "atlanticWebhook",
                "summary": "Atlantic's completion webhook: wake the verification of the job waiting on it",
                "description": (
                    "Authenticated by `X-Atlantic-Signature: sha256=<hex HMAC-SHA256 of the body keyed with "
                    "--atlantic-webhook-secret>` (401 otherwise); 404 when no secret is configured."
                ),
                "parameters": [{"name": "X-Atlantic-Signature", "in": "header", "required": False, "schema": STRING}],
                "requestBody": WEBHOOK_BODY,
                "responses": WEBHOOK_RESPONSES,
            }
        },
        "/webhooks/atlantic/{secret}": {
            "post": {
                "tags": ["provers"],
                "operationId": "atlanticWebhookWithSecret",
                "summary": "Atlantic's completion webhook, the secret in the path (for a plain callback URL)",
                "description": "401 when the secret is wrong; 404 when no secret is configured.",
                "parameters": [{"name": "secret", "in": "path", "required": True, "schema": STRING}],
                "requestBody": WEBHOOK_BODY,
                "responses": WEBHOOK_RESPONSES,
            }
        },
    }
    for prefix in ("", "/api/v1"):
        paths.update(_job_paths(prefix, admin_enabled=admin_enabled))
    paths.update(
        {
            "/blocks/batch-for-block/{n}": {
                "get": {
                    "tags": ["blocks"],
                    "operationId": "batchForBlock",
                    "summary": "The aggregator batch that contains a block",
                    "parameters": [_block_param()],
                    "responses": _responses(_ok(_obj({"batch_number": NON_NEGATIVE}), message=False), 400, 404, 503),
                }
            },
            "/blocks/settlement-status/{n}": {
                "get": {
                    "tags": ["blocks"],
                    "operationId": "settlementStatus",
                    "summary": "A block's batches and jobs",
                    "parameters": [_block_param()],
                    "responses": _responses(_ok(_ref("BlockSettlementStatus"), message=False), 400, 404, 503),
                }
            },
            "/batches/snos": {
                "get": {
                    "tags": ["batches"],
                    "operationId": "snosBatches",
                    "summary": "SNOS batches",
                    "parameters": _batch_params(SnosBatchStatus),
                    "responses": _responses(
                        _ok(_obj({"batches": {"type": "array", "items": _ref("SnosBatchDetails")}})), 400, 503
                    ),
                }
            },
            "/batches/aggregator": {
                "get": {
                    "tags": ["batches"],
                    "operationId": "aggregatorBatches",
                    "summary": "Aggregator batches",
                    "parameters": _batch_params(AggregatorBatchStatus),
                    "responses": _responses(
                        _ok(_obj({"batches": {"type": "array", "items": _ref("AggregatorBatchDetails")}})), 400, 503
                    ),
                }
            },
            "/": {
                "get": {
                    "tags": ["dashboard"],
                    "operationId": "dashboardPage",
                    "summary": "The dashboard page",
                    "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": STRING}}}},
                }
            },
            "/favicon.ico": {
                "get": {
                    "tags": ["dashboard"],
                    "operationId": "dashboardIcon",
                    "summary": "The dashboard's icon",
                    "responses": {"200": {"description": "ICO", "content": {"image/x-icon": {"schema": STRING}}}},
                }
            },
            "/static/{name}": {
                "get": {
                    "tags": ["dashboard"],
                    "operationId": "dashboardAsset",
                    "summary": "A dashboard script or style sheet",
                    "parameters": [{"name": "name", "in": "path", "required": True, "schema": STRING}],
                    "responses": {
                        "200": {
                            "description": "The file",
                            "content": {"text/javascript": {"schema": STRING}, "text/css": {"schema": STRING}},
                        },
                        "404": {"$ref": "#/components/responses/E404"},
                    },
                }
            },
            "/api/v1/dashboard/overview": {
                "get": {
                    "tags": ["dashboard"],
                    "operationId": "dashboardOverview",
                    "summary": "What the dashboard shows: stage progress, lag, batches, job counts, settlements",
                    "responses": _responses(_ok(_ref("DashboardOverview"), message=False), 503),
                }
            },
            "/api/v1/dashboard/blocks/{n}": {
                "get": {
                    "tags": ["dashboard"],
                    "operationId": "dashboardBlock",
                    "summary": "One block: its batches, jobs and settlement transactions",
                    "parameters": [_block_param()],
                    "responses": _responses(_ok(_ref("DashboardBlock"), message=False), 400, 404, 503),
                }
            },
            "/api/v1/dashboard/jobs": {
                "get": {
                    "tags": ["dashboard"],
                    "operationId": "dashboardJobs",
                    "summary": "The latest jobs, newest first",
                    "parameters": [
                        {
                            "name": "status",
                            "in": "query",
                            "required": False,
                            "description": "Only these statuses (repeat the key, or comma-separate)",
                            "style": "form",
                            "explode": True,
                            "schema": {"type": "array", "items": _ref("JobStatus")},
                        },
                        JOB_TYPES,
                        {
                            "name": "needs_attention",
                            "in": "query",
                            "required": False,
                            "description": "Only the jobs stuck until an operator acts (Failed, VerificationTimeout, "
                            "VerificationFailed) and those waiting out an outage; `status` is then ignored",
                            "schema": {"type": "string", "enum": ["true", "false", "1", "0"], "default": "false"},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                        },
                    ],
                    "responses": _responses(
                        _ok(_obj({"jobs": {"type": "array", "items": _ref("DashboardJob")}}), message=False), 400, 503
                    ),
                }
            },
        }
    )
    if admin_enabled:
        admin = {"tags": ["admin"], "security": [{"adminToken": []}]}
        for path, op, summary in (
            ("/admin/jobs/retry/failed", "adminRetryFailed", "Retry every Failed job"),
            ("/admin/jobs/reverify/verification-timeout", "adminReverify", "Re-verify every VerificationTimeout job"),
            (
                "/admin/jobs/requeue/pending-verification",
                "adminRequeuePending",
                "Re-send a verification message for every PendingVerification job",
            ),
            (
                "/admin/jobs/requeue/created",
                "adminRequeueCreated",
                "Re-send a processing message for every Created job",
            ),
        ):
            paths[path] = {
                "post": {
                    **admin,
                    "operationId": op,
                    "summary": summary,
                    "parameters": [JOB_TYPES],
                    "responses": _responses(_ok(_ref("BulkResult")), 400, 401, 413, 503),
                }
            }
        paths["/admin/batches/close-open"] = {
            "post": {
                **admin,
                "operationId": "adminCloseOpen",
                "summary": "Close every open batch (409 while a batching run holds the lease)",
                "responses": _responses(
                    _ok(_obj({"snos_batches_closed": NON_NEGATIVE, "aggregator_batches_closed": NON_NEGATIVE})),
                    400,
                    401,
                    409,
                    413,
                    503,
                ),
            }
        }
        paths["/admin/jobs/{id}/retry"] = {
            "post": {
                **admin,
                "operationId": "adminRetryOne",
                "summary": "Retry one Failed job (the dashboard's Retry button)",
                "parameters": [JOB_ID],
                "responses": _responses(_ok(), 400, 401, 404, 409, 413, 503),
            }
        }
    components: Schema = {
        "schemas": _schemas(),
        "responses": {
            f"E{status}": _json(_ref("Error"), description) for status, description in sorted(ERROR_TEXT.items())
        },
    }
    if admin_enabled:
        components["securitySchemes"] = {
            "adminToken": {"type": "http", "scheme": "bearer", "description": "The --admin-token value"}
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Madara Orchestrator API",
            "version": "0.1.0",
            "description": (
                "Job control, job and batch inspection, admin bulk operations and the dashboard's JSON. "
                'Responses use the envelope {"success", "data"?, "message"?}; an unknown route is a plain-text 404 '
                "and a wrong method a 405 in the envelope. Every response carries `x-trace-id`."
            ),
        },
        "paths": paths,
        "components": components,
    }
