"""Model lifecycle: start a retrain, see what is served."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from overdrive.api.deps import ServicesDep

router = APIRouter(prefix="/models", tags=["models"])


@router.post("/train", status_code=202)
async def train(services: ServicesDep) -> JSONResponse:
    """Start a full retrain in the background (or report the one running); poll /models/status."""
    job = services.collaborative.train(reason="POST /models/train")
    blend = await services.blend.train(reason="POST /models/train")
    return JSONResponse(status_code=202, content={"collaborative": job, "blend": blend})


@router.get("/status")
async def status(services: ServicesDep) -> dict:
    """Versions, sizes, last fit time and validation metrics of every served model."""
    return {**services.collaborative.status(), "blend": services.blend.status()}
