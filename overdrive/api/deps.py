"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from overdrive.wiring import Services


# `async def`: FastAPI runs plain-def dependencies in a thread pool, a hop per request each.
async def _services(request: Request) -> Services:
    return request.app.state.services


async def _request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id", "")


ServicesDep = Annotated[Services, Depends(_services)]
RequestIdDep = Annotated[str, Depends(_request_id)]
ItemIdPath = Annotated[str, Path(min_length=1, max_length=256)]
UserIdPath = Annotated[str, Path(min_length=1, max_length=256)]
