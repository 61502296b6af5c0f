"""Every endpoint of the API as one function giving a `Call`: the only place that names paths.

`Client` and `AsyncClient` run the same calls, each with its own I/O, so the two cannot drift
apart; the test that keeps the client in step with the server walks `ALL` against its OpenAPI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from overdrive_client.types import (AuditRecords, Assignments, CatalogItem, ErasureJob, Experiment, ExperimentChanges,
                                    ExperimentDefinition, ExperimentResults, Experiments, Insights, Item, ItemAnalytics,
                                    ItemFeatures, ItemsStored, Liveness, ModelStatus, Performance, RankRequest,
                                    RankResponse, Readiness, Signal, SignalAck, SimilarItems, Strategies, TrainingStarted,
                                    Trending, UserAnalytics, UserExport, UserRealtime)

T = TypeVar("T")
MAX_BATCH = 10_000  # signals or items in one batch request, as the service accepts


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request: `route` is the path template as the server declares it; the answer is `T`.

    `idempotent` says whether sending it twice can change the outcome (see `retry.py`);
    `ok` lists the statuses that are answers rather than errors; `empty`: no body comes back.
    """

    method: str
    route: str
    path_params: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] | None = None
    body: Any = None
    ok: frozenset[int] = frozenset({200})
    idempotent: bool = True
    empty: bool = False
    request_id: str | None = None

    @property
    def path(self) -> str:
        return self.route.format_map({k: quote(v, safe="") for k, v in self.path_params.items()})


def _query(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


# ---------------------------------------------------------------------------------- ranking

def rank(body: RankRequest, *, request_id: str | None = None) -> Call[RankResponse]:
    return Call("POST", "/rank/for-you/enhanced", body=body, request_id=request_id)


def strategies() -> Call[Strategies]:
    return Call("GET", "/rank/strategies")


# ---------------------------------------------------------------------------------- signals

def send_signal(signal: Signal, *, request_id: str | None = None) -> Call[SignalAck]:
    return Call("POST", "/signals/process", body=signal, request_id=request_id)


def send_signals(signals: Sequence[Signal], *, request_id: str | None = None) -> Call[SignalAck]:
    return Call("POST", "/signals/batch", body={"signals": signals}, request_id=request_id)


# ------------------------------------------------------------------------------------ items

def put_item(item: Item) -> Call[CatalogItem]:
    return Call("POST", "/items", body=item, ok=frozenset({201}))


def put_items(items: Sequence[Item], *, request_id: str | None = None) -> Call[ItemsStored]:
    return Call("POST", "/items/batch", body={"items": items}, ok=frozenset({201}), request_id=request_id)


def get_item(item_id: str) -> Call[CatalogItem]:
    return Call("GET", "/items/{item_id}", {"item_id": item_id})


def delete_item(item_id: str) -> Call[None]:
    return Call("DELETE", "/items/{item_id}", {"item_id": item_id}, ok=frozenset({204}), empty=True)


def similar_items(item_id: str, k: int = 10) -> Call[SimilarItems]:
    return Call("GET", "/items/{item_id}/similar", {"item_id": item_id}, params={"k": k})


def item_features(item_id: str) -> Call[ItemFeatures]:
    return Call("GET", "/items/{item_id}/features", {"item_id": item_id})


# -------------------------------------------------------------------------------- analytics

def user_analytics(user_id: str) -> Call[UserAnalytics]:
    return Call("GET", "/analytics/user/{user_id}", {"user_id": user_id})


def user_realtime(user_id: str) -> Call[UserRealtime]:
    return Call("GET", "/analytics/user/{user_id}/realtime", {"user_id": user_id})


def item_analytics(item_id: str) -> Call[ItemAnalytics]:
    return Call("GET", "/analytics/item/{item_id}", {"item_id": item_id})


def trending(limit: int = 20) -> Call[Trending]:
    return Call("GET", "/analytics/trending", params={"limit": limit})


def insights(user_id: str) -> Call[Insights]:
    return Call("GET", "/insights/{user_id}", {"user_id": user_id})


def performance() -> Call[Performance]:
    return Call("GET", "/performance/system")


# ----------------------------------------------------------------------------------- models

def train_models() -> Call[TrainingStarted]:
    # A second request while a retrain runs reports that one: repeating it starts nothing new.
    return Call("POST", "/models/train", ok=frozenset({202}))


def model_status() -> Call[ModelStatus]:
    return Call("GET", "/models/status")


# ----------------------------------------------------------------------------------- health

def live() -> Call[Liveness]:
    return Call("GET", "/health/live")


def ready() -> Call[Readiness]:
    # 503 is an answer here (not ready, and why), not a refusal to retry.
    return Call("GET", "/health/ready", ok=frozenset({200, 503}))


# ------------------------------------------------------------------------------------ users

def erase_user(user_id: str) -> Call[ErasureJob]:
    return Call("DELETE", "/users/{user_id}", {"user_id": user_id}, ok=frozenset({202}))


def erasure_job(job_id: str) -> Call[ErasureJob]:
    return Call("GET", "/users/erasures/{job_id}", {"job_id": job_id})


def export_user(user_id: str) -> Call[UserExport]:
    # The JSON document; the service also streams NDJSON (`format=ndjson`) for very large exports.
    return Call("GET", "/users/{user_id}/export", {"user_id": user_id}, params={"format": "json"})


# ------------------------------------------------------------------------------------ audit

def audit(*, user: str | None = None, principal: str | None = None, action: str | None = None,
          since: float | None = None, until: float | None = None, limit: int = 100) -> Call[AuditRecords]:
    return Call("GET", "/audit", params=_query(user=user, principal=principal, action=action, since=since,
                                               until=until, limit=limit))


# ------------------------------------------------------------------------------ experiments

def create_experiment(definition: ExperimentDefinition) -> Call[Experiment]:
    # Not idempotent: a repeat after a lost answer would create a second experiment.
    return Call("POST", "/experiments", body=definition, ok=frozenset({201}), idempotent=False)


def list_experiments() -> Call[Experiments]:
    return Call("GET", "/experiments")


def get_experiment(experiment_id: str) -> Call[Experiment]:
    return Call("GET", "/experiments/{experiment_id}", {"experiment_id": experiment_id})


def update_experiment(experiment_id: str, changes: ExperimentChanges) -> Call[Experiment]:
    return Call("PATCH", "/experiments/{experiment_id}", {"experiment_id": experiment_id}, body=changes)


def delete_experiment(experiment_id: str) -> Call[None]:
    return Call("DELETE", "/experiments/{experiment_id}", {"experiment_id": experiment_id}, ok=frozenset({204}),
                empty=True)


def assignment(user_id: str) -> Call[Assignments]:
    return Call("GET", "/experiments/assignment/{user_id}", {"user_id": user_id})


def experiment_results(experiment_id: str) -> Call[ExperimentResults]:
    return Call("GET", "/experiments/{experiment_id}/results", {"experiment_id": experiment_id})


ALL = (rank, strategies, send_signal, send_signals, put_item, put_items, get_item, delete_item, similar_items,
       item_features, user_analytics, user_realtime, item_analytics, trending, insights, performance, train_models,
       model_status, live, ready, erase_user, erasure_job, export_user, audit, create_experiment, list_experiments,
       get_experiment, update_experiment, delete_experiment, assignment, experiment_results)
