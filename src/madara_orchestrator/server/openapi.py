"""The HTTP API's OpenAPI 3.1 document, served at ``GET /openapi.json``, made from the mounted routes'
declarations (``http.Endpoint``): their parameters, bodies and answers, described by pydantic from the
types and models they name (``models.py``), so the enums (job types and statuses, batch statuses) come from
the domain and nothing is written twice. Admin routes (and their bearer scheme) are in the document only
when the app mounts them. ``tests/e2e/test_openapi.py`` runs schemathesis against a served instance.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema

from madara_orchestrator.server import models
from madara_orchestrator.server.http import Endpoint, Param

Schema = dict[str, Any]
REF = "#/components/schemas/{model}"
JSON = "application/json"
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
DESCRIPTION = (
    "Job control, job and batch inspection, admin bulk operations and the dashboard's JSON. "
    'Responses use the envelope {"success", "data"?, "message"?}; an unknown route is a plain-text 404 '
    "and a wrong method a 405 in the envelope. Every response carries `x-trace-id`."
)


class _NoFieldTitles(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


class Schemas:
    """The document's ``components/schemas``, filled as the operations name models and types."""

    def __init__(self) -> None:
        self.defs: dict[str, Schema] = {}

    def of(self, kind: Any) -> Schema:
        """A schema for ``kind`` (a model: a reference to it), its models and enums kept in ``defs``."""
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            schema = kind.model_json_schema(ref_template=REF, schema_generator=_NoFieldTitles)
            self.defs.update(schema.pop("$defs", {}))
            self.defs[kind.__name__] = schema
            return {"$ref": REF.format(model=kind.__name__)}
        schema = TypeAdapter(kind).json_schema(ref_template=REF, schema_generator=_NoFieldTitles)
        self.defs.update(schema.pop("$defs", {}))
        return schema

    def resolve(self, value: Any) -> Any:
        """``value`` with each model class in it replaced by its reference."""
        if isinstance(value, dict):
            return {key: self.resolve(item) for key, item in value.items()}
        if isinstance(value, type) and issubclass(value, BaseModel):
            return self.of(value)
        return value


def _parameter(param: Param, schemas: Schemas) -> Schema:
    out: Schema = {"name": param.name, "in": param.where, "required": param.required}
    if param.description:
        out["description"] = param.description
    if param.repeated:
        out.update(style="form", explode=True)
    schema = schemas.of(param.schema)
    if param.default is not None:
        schema["default"] = param.default
    out["schema"] = schema
    return out


def _success(endpoint: Endpoint, schemas: Schemas) -> Schema:
    """The success envelope: ``data`` when the route declares it, ``message`` when it sends one."""
    props: Schema = {"success": {"const": True}}
    if endpoint.data is not None:
        props["data"] = schemas.of(endpoint.data)
    if endpoint.message:
        props["message"] = {"type": "string"}
    envelope = {"type": "object", "required": list(props), "properties": props}
    return {"description": "Success", "content": {JSON: {"schema": envelope}}}


def _operation(endpoint: Endpoint, schemas: Schemas, *, admin_enabled: bool) -> Schema:
    op: Schema = {"tags": [endpoint.tag]}
    if endpoint.admin and admin_enabled:
        op["security"] = [{"adminToken": []}]
    op.update(operationId=endpoint.operation, summary=endpoint.summary)
    if endpoint.description:
        op["description"] = endpoint.description
    if endpoint.params:
        op["parameters"] = [_parameter(param, schemas) for param in endpoint.params]
    if endpoint.body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": schemas.of(endpoint.body)}}}
    if endpoint.answers is not None:
        op["responses"] = schemas.resolve(dict(endpoint.answers))
    else:
        responses = {"200": _success(endpoint, schemas)}
        for status in sorted(endpoint.errors):
            responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
        op["responses"] = responses
    return op


def openapi_document(endpoints: Iterable[Endpoint], *, admin_enabled: bool) -> dict[str, Any]:
    """The document of the routes ``endpoints`` declares (those the app mounts)."""
    schemas = Schemas()
    paths: dict[str, Schema] = {}
    for endpoint in endpoints:
        operation = _operation(endpoint, schemas, admin_enabled=admin_enabled)
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    error = schemas.of(models.Error)
    components: Schema = {
        "schemas": dict(sorted(schemas.defs.items())),
        "responses": {
            f"E{status}": {"description": text, "content": {JSON: {"schema": error}}}
            for status, text in sorted(ERROR_TEXT.items())
        },
    }
    if admin_enabled:
        components["securitySchemes"] = {
            "adminToken": {"type": "http", "scheme": "bearer", "description": "The --admin-token value"}
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Madara Orchestrator API", "version": "0.1.0", "description": DESCRIPTION},
        "paths": paths,
        "components": components,
    }
