"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from overdrive.domain.context import Context, from_client_hints
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


def header_context(request: Request) -> Context | None:
    """The device the request's own `User-Agent` and `Sec-CH-UA-*` client hints describe."""
    headers = request.headers
    if "user-agent" not in headers and "sec-ch-ua-platform" not in headers:
        return None
    return from_client_hints({k: headers[k] for k in ("user-agent", "sec-ch-ua-platform", "sec-ch-ua-mobile") if k in headers})


async def _header_context(request: Request) -> Context | None:
    return header_context(request)


ServicesDep = Annotated[Services, Depends(_services)]
HeaderContextDep = Annotated[Context | None, Depends(_header_context)]
RequestIdDep = Annotated[str, Depends(_request_id)]
ItemIdPath = Annotated[str, Path(min_length=1, max_length=256)]
UserIdPath = Annotated[str, Path(min_length=1, max_length=256)]
