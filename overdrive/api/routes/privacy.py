"""GDPR: erase a user from everything the service keeps, and export everything it keeps about them."""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from overdrive.api.deps import RequestIdDep, ServicesDep, UserIdPath
from overdrive.api.security import AllowedForUser, principal_of
from overdrive.domain.errors import Forbidden
from overdrive.domain.privacy import user_digest
from overdrive.security.audit import user_target
from overdrive.security.principal import Principal

router = APIRouter(prefix="/users", tags=["privacy"])


@router.delete("/{user_id}", status_code=202)
async def erase_user(user_id: UserIdPath, services: ServicesDep, request_id: RequestIdDep,
                     principal: Annotated[Principal, AllowedForUser("privacy:admin")]) -> JSONResponse:
    """Erase the user everywhere (idempotent). Answers the job; `GET /users/erasures/{job_id}`
    says when every store is clean."""
    job = await services.privacy.erase(user_id, principal=principal.id, request_id=request_id)
    return JSONResponse(status_code=202, content=job)


@router.get("/{user_id}/export", responses={200: {
    "description": "`format=json`: one JSON document; `format=ndjson`: one JSON object a line",
    "content": {"application/json": {"schema": {"type": "object"}},
                "application/x-ndjson": {"schema": {"type": "string", "description": "one JSON object a line"}}}}})
async def export_user(user_id: UserIdPath, services: ServicesDep, request_id: RequestIdDep,
                      principal: Annotated[Principal, AllowedForUser("privacy:admin")],
                      format: Literal["json", "ndjson"] = "json") -> Response:  # noqa: A002 - the query name
    """Every signal, profile, session, analytics view and audit record about the user
    (`overdrive.user-export/1`, docs/privacy.md). `format=ndjson` streams one object a line."""
    await services.audit.record(principal=principal.id, action="user.export", target=user_target(user_id),
                                request_id=request_id, detail={"format": format})
    if format == "json":
        return Response(orjson.dumps(await services.privacy.export(user_id), option=orjson.OPT_NON_STR_KEYS),
                        media_type="application/json")

    async def lines():  # noqa: ANN202
        async for kind, value in services.privacy.export_parts(user_id):
            yield orjson.dumps({"type": kind, **value}, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)

    return StreamingResponse(lines(), media_type="application/x-ndjson")


# After the export: `/users/erasures/export` is the export of a user named "erasures" (job ids are hex).
@router.get("/erasures/{job_id}")
async def erasure_job(job_id: Annotated[str, Path(min_length=1, max_length=64)], request: Request,
                      services: ServicesDep) -> dict:
    """An erasure job's state, per store. Privacy admins see any; a user's own token its own."""
    job = services.privacy.job(job_id)
    principal = principal_of(request)
    if not principal.allows("privacy:admin") and not (
            principal.subject is not None and principal.may_access_user(principal.subject, "privacy:admin")
            and user_digest(principal.subject) == job["user_digest"]):
        raise Forbidden(f"{principal.id} may not see erasure job {job_id!r}")
    return job
