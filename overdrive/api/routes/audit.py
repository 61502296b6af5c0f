"""The audit trail: who read or changed what, when — filtered for an auditor."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from overdrive.api.deps import RequestIdDep, ServicesDep
from overdrive.api.security import Allowed
from overdrive.security.audit import user_target
from overdrive.security.principal import Principal

router = APIRouter(tags=["audit"])

Text = Annotated[str | None, Query(min_length=1, max_length=256)]


@router.get("/audit")
async def audit_records(
    services: ServicesDep,
    request_id: RequestIdDep,
    principal: Annotated[Principal, Allowed("audit:read")],
    user: Text = None,
    by: Annotated[str | None, Query(alias="principal", min_length=1, max_length=256)] = None,
    action: Text = None,
    since: Annotated[float | None, Query(description="epoch seconds")] = None,
    until: Annotated[float | None, Query(description="epoch seconds")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict:
    """Records newest first; `user` is the user the record is about, `principal` who acted."""
    await services.audit.record(principal=principal.id, action="audit.read", target="audit", request_id=request_id,
                                detail={k: v for k, v in (("user", user), ("principal", by), ("action", action)) if v})
    records = await services.audit.query(target=None if user is None else user_target(user), principal=by,
                                         action=action, since=since, until=until, limit=limit)
    return {"records": records}
