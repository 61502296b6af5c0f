"""The OpenAPI document, told whole: every error status an operation can answer, with its body.

FastAPI documents what a route returns and a 422 for routes with parameters. The rest of what a
client may meet comes from the layers around the routes, and is added here by one rule per
status, from the operation's shape:

- 400 (body not valid JSON), 413 (body over `OVERDRIVE_MAX_BODY_BYTES`): operations with a body;
- 415 (a body that is not JSON): every write method (`RequestGuard` refuses it before routing);
- 401 (with `WWW-Authenticate`), 403, 429 (with `Retry-After`: the credential's rate limit, a full
  signal buffer): every operation but `/health/live` and `/health/ready` once a credential is configured;
- 404: operations with a path parameter;
- 422 (`errors` names each field): operations with parameters or a body;
- 503 (with `Retry-After`): a store or broker that cannot serve, or load shed; every operation
  but `/health/live` (`/health/ready` declares its own 503);
- 408 (headers or body too slow) and 431 (request line and headers too large): every operation,
  answered by the HTTP protocol (`overdrive.api.http_protocol`) before any route, then closed.

Statuses a route declares itself (409 for `POST /models/train`) keep their description and get the
error body. Every error body is `ErrorOut` (`overdrive.api.schemas`).

Where a credential is configured, the document says how to present one (`Authorization: Bearer`
— an API key or a JWT — or `X-API-Key`) on every operation but the two health probes; without
one (a loopback service with authentication off) it declares none, for none is asked.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from overdrive.api.schemas import ErrorOut
from overdrive.api.security import OPEN_PATHS

_ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "required": True,
                                "schema": {"type": "integer", "minimum": 0}}}
_DESCRIPTIONS = {
    400: "The body is not valid JSON",
    401: "No credential, or one refused (auth configured)",
    403: "The credential lacks this operation's scope",
    404: "Not found",
    408: "Headers or body did not arrive in time (the connection is closed)",
    409: "Conflicts with the service's present state",
    413: "The body is larger than OVERDRIVE_MAX_BODY_BYTES",
    415: "The body is not JSON (Content-Type: application/json)",
    422: "Validation error: `errors` names each field at fault",
    429: "Rate limit spent, or the signal buffer is full: retry after Retry-After",
    431: "Request line and headers too large (the connection is closed)",
    503: "A store or broker cannot serve, or the server sheds load: retry after Retry-After",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "the Bearer challenge", "required": True, "schema": {"type": "string"}}},
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}
_WRITES = frozenset({"post", "put", "patch", "delete"})


def error_statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    """The error statuses `method path` can answer besides those its route declares."""
    has_body = "requestBody" in operation
    parameters = operation.get("parameters", [])
    statuses = []
    if has_body:
        statuses += [400, 413]
    if method in _WRITES:
        statuses.append(415)
    if path not in OPEN_PATHS:
        statuses += [401, 403, 429]
    if any(p["in"] == "path" for p in parameters):
        statuses.append(404)
    if parameters or has_body:
        statuses.append(422)
    if path != "/health/live":
        statuses.append(503)
    return [*statuses, 408, 431]


_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "an API key or a JWT (docs/security.md)"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "an API key"},
}


def complete(document: dict[str, Any], *, strategies: list[str] | None = None, auth: bool = False) -> dict[str, Any]:
    """`document` with every operation's error answers declared, each with `ErrorOut`; the names
    `strategy` may take (`strategies`: this server's, fixed while it runs) as an enum; and, with
    `auth`, the credentials every operation but the health probes asks for."""
    _, defs = models_json_schema([(ErrorOut, "serialization")], ref_template="#/components/schemas/{model}")
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(defs["$defs"])
    if auth:
        components["securitySchemes"] = _SECURITY_SCHEMES
        for path, operations in document.get("paths", {}).items():
            for operation in operations.values():
                operation["security"] = [] if path in OPEN_PATHS else [{name: []} for name in _SECURITY_SCHEMES]
    if strategies:
        for model in ("RankRequest", "ArmIn"):
            for variant in schemas.get(model, {}).get("properties", {}).get("strategy", {}).get("anyOf", []):
                if variant.get("type") == "string":
                    variant["enum"] = sorted(strategies)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            declared = set(responses) - {"422"}  # the route's own (FastAPI adds a 422 of its own)
            for status in error_statuses(path, method, operation):
                responses.setdefault(str(status), {})
            for code, response in responses.items():
                if not (code.isdigit() and int(code) >= 400):
                    continue
                status = int(code)
                if status == 422 or not response.get("content"):  # FastAPI's own 422 body is not ours
                    response["content"] = {"application/json": {"schema": _ERROR_REF}}
                if status == 422 or not response.get("description"):
                    response["description"] = _DESCRIPTIONS.get(status, "Error")
                if status in _HEADERS and code not in declared:
                    response.setdefault("headers", _HEADERS[status])
            operation["responses"] = dict(sorted(responses.items()))
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 body, replaced above
        schemas.pop(unused, None)
    return document


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (built once, on first ask)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(get_openapi(
                title=app.title, version=app.version, openapi_version=app.openapi_version,
                description=app.description, routes=app.routes, tags=app.openapi_tags, servers=app.servers),
                strategies=list(app.state.services.ranker.strategies), auth=app.state.services.auth.enabled)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
