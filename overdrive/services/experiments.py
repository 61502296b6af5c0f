"""Experiments as a use case: definitions, serving a user's arm, the exposure log, results.

A rank request that names no strategy runs the arm of the earliest-created live experiment that
exposes the user (`GET /experiments/assignment/{user}` lists their arm in every one); a request
that names a strategy gets it and counts for no experiment. Every served feed of an experiment
is logged — experiment, arm, user, request id, the shown ids in order and, for interleaving, which
arm contributed each — from a buffer flushed in the background, so a ranking never waits on the
log (a crash loses at most the last second of exposures). Definitions are cached for a second on
each replica: a change made through another replica applies within that.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from overdrive.domain.context import Context
from overdrive.domain.errors import BackendUnavailable, Conflict, InvalidInput, NotFound
from overdrive.domain.types import COMPONENTS, Candidate, RankResult
from overdrive.domain.weighting import SignalWeighting
from overdrive.experiments.analysis import analyse
from overdrive.experiments.assignment import allocate, assignments
from overdrive.experiments.interleaving import team_draft
from overdrive.experiments.model import Arm, Experiment, validate
from overdrive.services.ranking import EnhancedOverdriveRankingService
from overdrive.store.protocols import ExperimentStore, SignalHistory

log = logging.getLogger(__name__)

_CACHE_S = 1.0
_FLUSH_EVERY_S = 0.5
_FLUSH_AT = 1000
INTERLEAVED = "interleaved"


class ExperimentService:
    def __init__(self, *, store: ExperimentStore, ranker: EnhancedOverdriveRankingService, history: SignalHistory,
                 weighting: SignalWeighting, holdout: float = 0.0) -> None:
        self._store = store
        self._ranker = ranker
        self._history = history
        self._weighting = weighting
        self._holdout = holdout
        self._cache: tuple[float, list[Experiment]] = (-1.0, [])
        self._buffer: list[dict] = []
        self._flusher: asyncio.Task | None = None

    # --------------------------------------------------------------------------- definitions

    async def create(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        experiment = Experiment(
            id=uuid.uuid4().hex, name=definition["name"], kind=definition.get("kind", "ab"),
            arms=tuple(Arm(**arm) for arm in definition["arms"]), layer=definition.get("layer", "default"),
            salt=definition.get("salt") or uuid.uuid4().hex, exposure=definition.get("exposure", 1.0),
            state=definition.get("state", "draft"), starts_at=definition.get("starts_at"),
            ends_at=definition.get("ends_at"), attribution_window_s=definition.get("attribution_window_s", 86_400.0),
        )
        experiment = self._validated(experiment)
        taken = await self._taken(experiment)
        experiment = dataclasses.replace(experiment, buckets=allocate(experiment.exposure, (), taken))
        await self._store.put(experiment.id, experiment.as_dict())
        self._cache = (-1.0, [])
        return experiment.as_dict()

    async def update(self, experiment_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Name, schedule, state (draft → running → stopped), exposure (up only while running),
        attribution window; arms, shares and salt only while a draft."""
        experiment = await self._get(experiment_id)
        fixed = {"arms", "salt", "kind", "layer"} & set(changes)
        if fixed and experiment.state != "draft":
            raise Conflict(f"{sorted(fixed)} cannot change once the experiment has run: start another one")
        state = changes.get("state", experiment.state)
        order = {"draft": 0, "running": 1, "stopped": 2}
        if order[state] < order[experiment.state]:
            raise Conflict(f"state cannot go from {experiment.state} back to {state}")
        updated = dataclasses.replace(experiment, **{k: v for k, v in changes.items() if k != "arms"},
                                      **({"arms": tuple(Arm(**a) for a in changes["arms"])} if "arms" in changes else {}))
        updated = self._validated(updated)
        if updated.exposure != experiment.exposure or updated.layer != experiment.layer:
            owned = experiment.buckets if updated.layer == experiment.layer and experiment.state != "draft" else ()
            updated = dataclasses.replace(updated, buckets=allocate(updated.exposure, owned, await self._taken(updated)))
        await self._store.put(updated.id, updated.as_dict())
        self._cache = (-1.0, [])
        return updated.as_dict()

    async def delete(self, experiment_id: str) -> None:
        if not await self._store.delete(experiment_id):
            raise NotFound(f"experiment {experiment_id!r} not found")
        self._cache = (-1.0, [])

    async def get(self, experiment_id: str) -> dict[str, Any]:
        return (await self._get(experiment_id)).as_dict()

    async def list(self) -> list[dict[str, Any]]:
        return [e.as_dict() for e in await self._all(fresh=True)]

    async def _get(self, experiment_id: str) -> Experiment:
        for experiment in await self._all(fresh=True):
            if experiment.id == experiment_id:
                return experiment
        raise NotFound(f"experiment {experiment_id!r} not found")

    async def _all(self, *, fresh: bool = False) -> list[Experiment]:
        at, cached = self._cache
        now = time.monotonic()
        if fresh or now - at > _CACHE_S:
            cached = sorted((Experiment.from_dict(d) for d in await self._store.all()), key=lambda e: e.created_at)
            self._cache = (now, cached)
        return cached

    async def _taken(self, experiment: Experiment) -> list[tuple[int, int]]:
        """Buckets the layer's other draft and running experiments hold."""
        return [b for e in await self._all(fresh=True) if e.layer == experiment.layer and e.id != experiment.id
                and e.state != "stopped" for b in e.buckets]

    def _validated(self, experiment: Experiment) -> Experiment:
        return validate(experiment, strategies=set(self._ranker.strategies), components=set(COMPONENTS))

    # ------------------------------------------------------------------------------ serving

    async def assignment(self, user_id: str) -> list[dict[str, Any]]:
        found = assignments(await self._all(), user_id, now=time.time(), holdout=self._holdout)
        return [{"experiment": e.id, "name": e.name, "kind": e.kind, "layer": e.layer,
                 "arm": INTERLEAVED if e.kind == "interleaving" else arm.name} for e, arm in found]

    async def rank(self, *, user_id: str, candidates: Sequence[Candidate] | None, limit: int, strategy: str | None,
                   request_id: str, exclude_seen: bool = True, context: Context | None = None) -> RankResult:
        """The user's feed: `strategy` when named, else their experiment arm, else the ranker's default.
        Bots are in no experiment."""
        request_id = request_id or uuid.uuid4().hex
        chosen = None if strategy is not None or (context is not None and context.bot) else next(iter(
            assignments(await self._all(), user_id, now=time.time(), holdout=self._holdout)), None)
        if chosen is None:
            return await self._ranker.rank(user_id=user_id, candidates=candidates, limit=limit,
                                           strategy=strategy, request_id=request_id,
                                           exclude_seen=exclude_seen, context=context)
        experiment, arm = chosen
        served = INTERLEAVED if experiment.kind == "interleaving" else arm.name
        try:
            if experiment.kind == "interleaving":
                result = await self._interleaved(experiment, user_id, candidates, limit, request_id, exclude_seen, context)
            else:
                result = await self._ranker.rank(
                    user_id=user_id, candidates=candidates, limit=limit, request_id=request_id,
                    exclude_seen=exclude_seen, strategy=arm.strategy or f"experiment:{arm.name}",
                    weights=self._blend(arm), experiment={"id": experiment.id, "arm": arm.name}, context=context)
        except InvalidInput:
            raise  # the request's fault, not the arm's
        except Exception:
            self._buffer.append({"experiment": experiment.id, "arm": served, "user_id": user_id,
                                 "request_id": request_id, "at": time.time(), "error": True})
            raise
        self._log(experiment, result, context)
        return result

    def _blend(self, arm: Arm) -> Mapping[str, float] | None:
        return arm.weights if arm.weights is not None else self._ranker.blend_of(arm.strategy or "")

    async def _interleaved(self, experiment: Experiment, user_id: str, candidates: Sequence[Candidate] | None,
                           limit: int, request_id: str, exclude_seen: bool, context: Context | None) -> RankResult:
        started = time.perf_counter()
        blends = {arm.name: self._blend(arm) or {} for arm in experiment.arms}
        feeds, considered = await self._ranker.rank_each(user_id=user_id, candidates=candidates, limit=limit,
                                                         blends=blends, exclude_seen=exclude_seen, context=context)
        rng = random.Random(f"{experiment.salt}|{user_id}|{request_id}")  # a replayed request drafts the same feed
        drafted = team_draft({name: [i.id for i in feed] for name, feed in feeds.items()}, limit, rng)
        by_id = {i.id: i for name in feeds for i in feeds[name] if drafted.team.get(i.id) == name}
        items = [dataclasses.replace(by_id[item_id], rank=pos) for pos, item_id in enumerate(drafted.items, 1)]
        result = RankResult(user_id=user_id, items=items, strategy=INTERLEAVED, request_id=request_id,
                            processing_time_ms=(time.perf_counter() - started) * 1000.0,
                            candidates_considered=considered,
                            experiment={"id": experiment.id, "arm": INTERLEAVED, "teams": drafted.team})
        self._ranker.observe(result)
        return result

    # ----------------------------------------------------------------------------- exposures

    def _log(self, experiment: Experiment, result: RankResult, context: Context | None) -> None:
        self._buffer.append({
            "experiment": experiment.id, "arm": (result.experiment or {}).get("arm"), "user_id": result.user_id,
            "request_id": result.request_id, "at": time.time(), "items": [i.id for i in result.items],
            "team": (result.experiment or {}).get("teams"), "latency_ms": round(result.processing_time_ms, 3),
            "device_class": context.device_class if context is not None else None,
            "country": context.country if context is not None else None,
        })
        if len(self._buffer) >= _FLUSH_AT:
            asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> int:
        """Store the buffered exposures now; how many."""
        batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        try:
            await self._store.log_exposures(batch)
        except BackendUnavailable as exc:  # keep them for the next flush
            log.warning("experiment exposures not stored yet (%d): %s", len(batch), exc)
            self._buffer = batch + self._buffer
            return 0
        return len(batch)

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_every())

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_EVERY_S)
            await self.flush()

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()

    # -------------------------------------------------------------------------------- results

    async def results(self, experiment_id: str) -> dict[str, Any]:
        """`overdrive.experiments.analysis.analyse` over the whole exposure log and the exposed
        users' signals (read once, off the event loop)."""
        experiment = await self._get(experiment_id)
        await self.flush()
        exposures = await asyncio.to_thread(lambda: [e for batch in self._store.exposures(experiment_id) for e in batch])
        signals = await self._history.signals_of({e["user_id"] for e in exposures})
        return await asyncio.to_thread(analyse, experiment, exposures, signals, self._weighting)

    # -------------------------------------------------------------------------------- privacy

    async def forget_user(self, user_id: str) -> int:
        self._buffer = [e for e in self._buffer if e["user_id"] != user_id]
        return await self._store.forget_user(user_id)

    async def user_data(self, user_id: str) -> dict[str, Any]:
        """The user's assignments and exposures (for their export)."""
        await self.flush()
        return {"assignments": await self.assignment(user_id), "exposures": await self._store.user_exposures(user_id)}
