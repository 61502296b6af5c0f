"""The item catalog."""

from __future__ import annotations

import dataclasses
import time

from typing import Annotated

from fastapi import APIRouter, Query, Response

from overdrive.api.deps import ItemIdPath, RequestIdDep, ServicesDep
from overdrive.api.security import Allowed
from overdrive.api.schemas import ItemBatchIn, ItemIn, ItemOut
from overdrive.domain.errors import NotFound
from overdrive.domain.types import Item
from overdrive.security.principal import Principal

router = APIRouter(prefix="/items", tags=["catalog"])


def _out(item: Item) -> ItemOut:
    return ItemOut(**{**dataclasses.asdict(item), "tags": list(item.tags)})


@router.post("", response_model=ItemOut, status_code=201, dependencies=[Allowed("items:write")])
async def put_item(item: ItemIn, services: ServicesDep) -> ItemOut:
    stored = item.to_domain(time.time())
    await services.catalog.put([stored])
    return _out(stored)


@router.post("/batch", status_code=201, dependencies=[Allowed("items:write")])
async def put_items(batch: ItemBatchIn, services: ServicesDep) -> dict:
    """Up to 10,000 items, stored all-or-nothing (an existing id is replaced)."""
    now = time.time()
    await services.catalog.put([i.to_domain(now) for i in batch.items])
    return {"stored": len(batch.items)}


@router.get("/{item_id}", response_model=ItemOut, dependencies=[Allowed("items:read")])
async def get_item(item_id: ItemIdPath, services: ServicesDep) -> ItemOut:
    return _out(await services.catalog.get(item_id))


@router.get("/{item_id}/similar", dependencies=[Allowed("items:read")])
async def similar_items(
    item_id: ItemIdPath, services: ServicesDep, k: Annotated[int, Query(ge=1, le=1000)] = 10
) -> dict:
    """Nearest items by fused content embedding (the vector index)."""
    return await _content(services).similar(item_id, k)


@router.get("/{item_id}/features", dependencies=[Allowed("items:read")])
async def item_features(item_id: ItemIdPath, services: ServicesDep) -> dict:
    """What content understanding made of the item: modalities, sentiment, language, quality, media stats."""
    return await _content(services).describe(item_id)


def _content(services: ServicesDep):  # noqa: ANN202 - ContentService lives behind wiring
    if services.content is None:
        raise NotFound("content features are disabled (OVERDRIVE_CONTENT_FEATURES=false)")
    return services.content


@router.delete("/{item_id}", status_code=204)
async def delete_item(item_id: ItemIdPath, services: ServicesDep, request_id: RequestIdDep,
                      principal: Annotated[Principal, Allowed("items:write")]) -> Response:
    await services.catalog.delete(item_id)
    await services.audit.record(principal=principal.id, action="item.delete", target=f"item:{item_id}",
                                request_id=request_id)
    return Response(status_code=204)
