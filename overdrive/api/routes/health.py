"""Liveness (the process answers) and readiness (every dependency answers)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from overdrive.api.deps import ServicesDep
from overdrive.api.schemas import ReadinessOut

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> dict:
    return {"status": "ok"}


@router.get("/ready", responses={
    200: {"model": ReadinessOut, "description": "Every dependency answers"},
    503: {"model": ReadinessOut, "description": "A dependency does not answer: `checks` says which"}})
async def ready(services: ServicesDep) -> JSONResponse:
    checks = await services.readiness()
    ok = all(c["ok"] for c in checks.values())
    return JSONResponse(status_code=200 if ok else 503, content={"status": "ready" if ok else "not_ready", "checks": checks})
