"""Analytics, insights and performance, all computed from stored data."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from overdrive.api.deps import ItemIdPath, RequestIdDep, ServicesDep, UserIdPath
from overdrive.api.security import Allowed, AllowedForUser, principal_of
from overdrive.security.audit import user_target

router = APIRouter(tags=["analytics"])


async def _read_user(request: Request, services: ServicesDep, request_id: str, user_id: str, view: str) -> None:
    """Every read of one user's data leaves an audit record first (no record, no read)."""
    await services.audit.record(principal=principal_of(request).id, action="user.read", target=user_target(user_id),
                                request_id=request_id, detail={"view": view})


@router.get("/analytics/user/{user_id}", dependencies=[AllowedForUser("analytics:read")])
async def user_analytics(user_id: UserIdPath, request: Request, services: ServicesDep, request_id: RequestIdDep) -> dict:
    await _read_user(request, services, request_id, user_id, "analytics")
    return await services.analytics.profile(user_id)


@router.get("/analytics/user/{user_id}/realtime", dependencies=[AllowedForUser("analytics:read")])
async def user_realtime(user_id: UserIdPath, request: Request, services: ServicesDep, request_id: RequestIdDep) -> dict:
    await _read_user(request, services, request_id, user_id, "realtime")
    return await services.analytics.realtime(user_id)


@router.get("/analytics/item/{item_id}", dependencies=[Allowed("analytics:read")])
async def item_analytics(item_id: ItemIdPath, services: ServicesDep) -> dict:
    """Windowed activity (1m … 24h), decayed engagement and velocity of an item and its author."""
    return await services.item_analytics.item(item_id)


@router.get("/analytics/trending", dependencies=[Allowed("analytics:read")])
async def trending(services: ServicesDep, limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> dict:
    """Items whose last hour runs fastest against their own daily baseline."""
    return await services.item_analytics.trending(limit)


@router.get("/insights/{user_id}", dependencies=[AllowedForUser("analytics:read")])
async def insights(user_id: UserIdPath, request: Request, services: ServicesDep, request_id: RequestIdDep) -> dict:
    await _read_user(request, services, request_id, user_id, "insights")
    return await services.analytics.insights(user_id)


@router.get("/performance/system", dependencies=[Allowed("metrics:read")])
async def performance(services: ServicesDep) -> dict:
    return {
        **services.performance.snapshot(),
        "store": await services.store_sizes(),
        "ranking": {"strategies": services.ranker.strategies},
    }


@router.get("/metrics", include_in_schema=False, dependencies=[Allowed("metrics:read")])
async def metrics(services: ServicesDep) -> Response:
    """Prometheus exposition of request and signal-stage latencies, throughput and queue depth."""
    return Response(services.performance.prometheus(), media_type="text/plain; version=0.0.4")
