"""Analytics, insights and performance, all computed from stored data."""

from __future__ import annotations

from fastapi import APIRouter, Response

from overdrive.api.deps import ServicesDep, UserIdPath

router = APIRouter(tags=["analytics"])


@router.get("/analytics/user/{user_id}")
async def user_analytics(user_id: UserIdPath, services: ServicesDep) -> dict:
    return await services.analytics.profile(user_id)


@router.get("/analytics/user/{user_id}/realtime")
async def user_realtime(user_id: UserIdPath, services: ServicesDep) -> dict:
    return await services.analytics.realtime(user_id)


@router.get("/insights/{user_id}")
async def insights(user_id: UserIdPath, services: ServicesDep) -> dict:
    return await services.analytics.insights(user_id)


@router.get("/performance/system")
async def performance(services: ServicesDep) -> dict:
    return {
        **services.performance.snapshot(),
        "store": {
            "signals": await services.signal_log.count(),
            "items": await services.catalog.count(),
        },
        "ranking": {"strategies": services.ranker.strategies},
    }


@router.get("/metrics", include_in_schema=False)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus exposition of request and signal-stage latencies, throughput and queue depth."""
    return Response(services.performance.prometheus(), media_type="text/plain; version=0.0.4")
