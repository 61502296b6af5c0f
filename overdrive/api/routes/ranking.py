"""The For You feed."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response

from overdrive.api.deps import ServicesDep, header_context, request_id_of, services_of
from overdrive.api.errors import field_path
from overdrive.api.security import Allowed, authorize
from overdrive.api.schemas import RankRequest, RankResponse, candidate_content
from overdrive.domain.errors import InvalidInput
from overdrive.domain.types import Candidate

router = APIRouter(prefix="/rank", tags=["ranking"])


@router.post("/for-you/enhanced", response_model=RankResponse)
async def rank_for_you(body: RankRequest, request: Request) -> Response:
    # The hot path takes what `ServicesDep` and `RequestIdDep` give straight from the request:
    # FastAPI resolving two dependencies costs tens of µs a call.
    services, request_id = services_of(request), request_id_of(request)
    await authorize(request, "rank")
    candidates = None
    if body.candidate_items is not None:
        ids = [c["id"] for c in body.candidate_items]
        if len(set(ids)) < len(ids):
            seen: set[str] = set()
            pos = next(pos for pos, i in enumerate(ids) if i in seen or seen.add(i))  # the first repeat
            raise InvalidInput(f"duplicate candidate id {ids[pos]!r}", field=field_path(("body", "candidate_items", pos, "id")))
        if max(map(len, body.candidate_items), default=1) == 1:  # bare ids, the usual request
            candidates = list(map(Candidate, ids))
        else:
            candidates = [Candidate(c["id"], candidate_content(c)) if len(c) > 1 else Candidate(c["id"])
                          for c in body.candidate_items]
    result = await services.experiments.rank(
        user_id=body.user_id,
        candidates=candidates,
        limit=body.limit,
        strategy=body.strategy,
        request_id=request_id,
        exclude_seen=body.exclude_seen,
        context=body.context.to_domain(header_context(request)) if body.context is not None else header_context(request),
    )
    # Serialised here with orjson: the hot path skips re-validating what the ranker built
    # (`response_model` still documents the shape).
    answer = {
        "user_id": result.user_id,
        "items": [{"id": i.id, "score": i.score, "rank": i.rank, "scores": i.scores} for i in result.items],
        "strategy": result.strategy,
        "request_id": result.request_id,
        "processing_time_ms": result.processing_time_ms,
    }
    if result.experiment is not None:
        answer["experiment"] = result.experiment
    return Response(orjson.dumps(answer), media_type="application/json")


@router.get("/strategies", dependencies=[Allowed("rank")])
async def strategies(services: ServicesDep) -> dict:
    """The named blends a request may pick (A/B tests): each one's component weights."""
    return {"default": services.ranker.default_strategy, "strategies": services.ranker.strategies}
