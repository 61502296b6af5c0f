"""Experiments: A/B tests and interleaving, their users' arms and their results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from overdrive.api.deps import RequestIdDep, ServicesDep, UserIdPath
from overdrive.api.schemas import ExperimentIn, ExperimentPatch
from overdrive.api.security import Allowed, AllowedForUser
from overdrive.security.principal import Principal

router = APIRouter(prefix="/experiments", tags=["experiments"])
ExperimentId = Annotated[str, Path(min_length=1, max_length=64)]
_ROOM = {409: {"description": "The layer's other experiments hold the users this exposure needs"}}
_STATE = {409: {"description": "Not in this state: arms, salt and layer are fixed once it has run; the state only "
                               "goes forward (draft, running, stopped); exposure only grows"}}


@router.post("", status_code=201, responses=_ROOM)
async def create_experiment(body: ExperimentIn, services: ServicesDep, request_id: RequestIdDep,
                            principal: Annotated[Principal, Allowed("experiments:admin")]) -> dict:
    experiment = await services.experiments.create(body.model_dump())
    await services.audit.record(principal=principal.id, action="experiment.create", target=f"experiment:{experiment['id']}",
                                request_id=request_id, detail={"name": experiment["name"], "state": experiment["state"]})
    return experiment


@router.get("", dependencies=[Allowed("experiments:read")])
async def list_experiments(services: ServicesDep) -> dict:
    return {"experiments": await services.experiments.list()}


@router.get("/assignment/{user_id}", dependencies=[AllowedForUser("experiments:read")])
async def assignment(user_id: UserIdPath, services: ServicesDep) -> dict:
    """The user's arm in every running experiment that exposes them."""
    return {"user_id": user_id, "assignments": await services.experiments.assignment(user_id)}


@router.get("/{experiment_id}", dependencies=[Allowed("experiments:read")])
async def get_experiment(experiment_id: ExperimentId, services: ServicesDep) -> dict:
    return await services.experiments.get(experiment_id)


@router.patch("/{experiment_id}", responses=_STATE)
async def update_experiment(experiment_id: ExperimentId, body: ExperimentPatch, services: ServicesDep,
                            request_id: RequestIdDep, principal: Annotated[Principal, Allowed("experiments:admin")]) -> dict:
    """Start (`state: running`), stop, rename, reschedule, raise exposure. Arms, shares and salt
    change only while a draft: a running experiment's split is fixed."""
    changes = body.model_dump(exclude_unset=True)
    experiment = await services.experiments.update(experiment_id, changes)
    await services.audit.record(principal=principal.id, action="experiment.update", target=f"experiment:{experiment_id}",
                                request_id=request_id, detail={"changed": sorted(changes)})
    return experiment


@router.delete("/{experiment_id}", status_code=204)
async def delete_experiment(experiment_id: ExperimentId, services: ServicesDep, request_id: RequestIdDep,
                            principal: Annotated[Principal, Allowed("experiments:admin")]) -> Response:
    await services.experiments.delete(experiment_id)
    await services.audit.record(principal=principal.id, action="experiment.delete", target=f"experiment:{experiment_id}",
                                request_id=request_id)
    return Response(status_code=204)


@router.get("/{experiment_id}/results", dependencies=[Allowed("experiments:read")])
async def results(experiment_id: ExperimentId, services: ServicesDep) -> dict:
    """Per arm: users, exposures, clicks, CTR and engagement with 95 % intervals per user, lift
    against the control, sample-ratio mismatch, guardrails, cohorts (A/B); wins, losses, ties and
    a sign test (interleaving)."""
    return await services.experiments.results(experiment_id)
