"""Error → HTTP mapping. Every error body is JSON and names the offending field where there is one."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from overdrive.domain.errors import BackendUnavailable, Conflict, Forbidden, InvalidInput, NotFound, Overloaded

log = logging.getLogger(__name__)


def field_path(loc: tuple) -> str:
    """('body', 'signals', 3, 'signal_type') → 'signals[3].signal_type'."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "path", "query") and len(loc) > 1 else loc)
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


_ID_PATTERN = r"^[^/]+$"  # overdrive.api.schemas.Id


def _message(error: dict) -> str:
    if error["type"] == "string_pattern_mismatch" and (error.get("ctx") or {}).get("pattern") == _ID_PATTERN:
        return "must not contain '/': ids travel as one URL path segment (percent-encode any other character)"
    return error["msg"]


def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        {"field": field_path(tuple(e["loc"])), "message": _message(e), "type": e["type"]}
        for e in exc.errors()
    ]
    if any(e["type"] == "json_invalid" for e in errors):
        errors = [{**e, "field": "body"} for e in errors if e["type"] == "json_invalid"]
        return JSONResponse(status_code=400, content={"error": "invalid_json", "message": "request body is not valid JSON", "errors": errors})
    first = errors[0]
    message = f"{first['field']}: {first['message']}"
    return JSONResponse(status_code=422, content={"error": "validation_error", "message": message, "errors": errors})


def _invalid(request: Request, exc: InvalidInput) -> JSONResponse:
    field = exc.field or "body"
    return JSONResponse(
        status_code=422,
        content={"error": "validation_error", "message": f"{field}: {exc}", "errors": [{"field": field, "message": str(exc), "type": "invalid"}]},
    )


def _forbidden(request: Request, exc: Forbidden) -> JSONResponse:
    return JSONResponse(status_code=403, content={"error": "forbidden", "message": str(exc)})


def _not_found(request: Request, exc: NotFound) -> JSONResponse:
    return JSONResponse(status_code=404, content={"error": "not_found", "message": str(exc)})


def _conflict(request: Request, exc: Conflict) -> JSONResponse:
    return JSONResponse(status_code=409, content={"error": "conflict", "message": str(exc)})


def _unavailable(request: Request, exc: BackendUnavailable) -> JSONResponse:
    log.warning("backend unavailable: %s", exc)
    return JSONResponse(status_code=503, headers={"Retry-After": "1"}, content={"error": "unavailable", "message": str(exc)})


def _overloaded(request: Request, exc: Overloaded) -> JSONResponse:
    return JSONResponse(
        status_code=429,
        headers={"Retry-After": str(max(1, round(exc.retry_after_s)))},
        content={"error": "overloaded", "message": str(exc)},
    )


def _http(request: Request, exc: HTTPException) -> JSONResponse:
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
    return JSONResponse(
        status_code=exc.status_code,
        headers=headers,
        content={"error": "http_error", "message": str(exc.detail)},
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path. Starlette's 405 names only the first route
    matching the path (`/experiments`: POST, though GET is served there too). Each method is
    tried against the router (its routes may be included routers, not endpoints)."""
    routes = request.app.router.routes
    return [method for method in _METHODS
            if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)]


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(status_code=500, content={"error": "internal", "message": "internal error; see server log"})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidInput, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(NotFound, _not_found)  # type: ignore[arg-type]
    app.add_exception_handler(Conflict, _conflict)  # type: ignore[arg-type]
    app.add_exception_handler(Forbidden, _forbidden)  # type: ignore[arg-type]
    app.add_exception_handler(BackendUnavailable, _unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(Overloaded, _overloaded)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
