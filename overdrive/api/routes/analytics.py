"""Analytics, insights and performance, all computed from stored data."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from overdrive.api.deps import ItemIdPath, ServicesDep, UserIdPath

router = APIRouter(tags=["analytics"])


@router.get("/analytics/user/{user_id}")
async def user_analytics(user_id: UserIdPath, services: ServicesDep) -> dict:
    return await services.analytics.profile(user_id)


@router.get("/analytics/user/{user_id}/realtime")
async def user_realtime(user_id: UserIdPath, services: ServicesDep) -> dict:
    return await services.analytics.realtime(user_id)


@router.get("/analytics/item/{item_id}")
async def item_analytics(item_id: ItemIdPath, services: ServicesDep) -> dict:
    """Windowed activity (1m … 24h), decayed engagement and velocity of an item and its author."""
    return await services.item_analytics.item(item_id)


@router.get("/analytics/trending")
async def trending(services: ServicesDep, limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> dict:
    """Items whose last hour runs fastest against their own daily baseline."""
    return await services.item_analytics.trending(limit)


@router.get("/insights/{user_id}")
async def insights(user_id: UserIdPath, services: ServicesDep) -> dict:
    return await services.analytics.insights(user_id)


@router.get("/performance/system")
async def performance(services: ServicesDep) -> dict:
    return {
        **services.performance.snapshot(),
        "store": await services.store_sizes(),
        "ranking": {"strategies": services.ranker.strategies},
    }


@router.get("/metrics", include_in_schema=False)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus exposition of request and signal-stage latencies, throughput and queue depth."""
    return Response(services.performance.prometheus(), media_type="text/plain; version=0.0.4")
