"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from overdrive.services.container import Services


def services_of(request: Request) -> Services:
    return request.app.state.services


def request_id_of(request: Request) -> str:
    """The id `RequestGuard` gave the request ('' outside it)."""
    return request.scope.get("state", {}).get("request_id", "")


# `async def`: FastAPI runs plain-def dependencies in a thread pool, a hop per request each.
async def _services(request: Request) -> Services:
    return services_of(request)


async def _request_id(request: Request) -> str:
    return request_id_of(request)


ServicesDep = Annotated[Services, Depends(_services)]
RequestIdDep = Annotated[str, Depends(_request_id)]
ItemIdPath = Annotated[str, Path(min_length=1, max_length=256)]
UserIdPath = Annotated[str, Path(min_length=1, max_length=256)]
