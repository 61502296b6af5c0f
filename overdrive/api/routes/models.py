"""Model lifecycle: start a retrain, see what is served."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from typing import Annotated

from overdrive.api.deps import RequestIdDep, ServicesDep
from overdrive.api.security import Allowed
from overdrive.domain.errors import Conflict
from overdrive.security.principal import Principal

router = APIRouter(prefix="/models", tags=["models"])


@router.post("/train", status_code=202, responses={409: {"description": "No signals to train on yet"}})
async def train(services: ServicesDep, request_id: RequestIdDep,
                principal: Annotated[Principal, Allowed("models:admin")]) -> JSONResponse:
    """Start a full retrain in the background (or report the one running); poll /models/status.
    409 while the signal log holds nothing to train on."""
    await services.audit.record(principal=principal.id, action="models.train", target="models", request_id=request_id)
    if not await services.collaborative.has_signals():
        raise Conflict("no signals to train on yet: send signals first (POST /signals/process or /signals/batch)")
    job = services.collaborative.train(reason="POST /models/train")
    blend = await services.blend.train(reason="POST /models/train")
    return JSONResponse(status_code=202, content={"collaborative": job, "blend": blend})


@router.get("/status", dependencies=[Allowed("metrics:read")])
async def status(services: ServicesDep) -> dict:
    """Versions, sizes, last fit time and validation metrics of every served model."""
    return {**services.collaborative.status(), "blend": services.blend.status()}
