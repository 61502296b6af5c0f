"""Who may call what: authentication for every request, a scope check per route.

`AuthGuard` (ASGI middleware) turns the request's credential into a `Principal` before any
route runs, so every path — unknown ones and the OpenAPI docs included — needs a valid
credential, except `/health/live` and `/health/ready`. A missing or refused credential is
answered 401 with `WWW-Authenticate` and recorded in the audit trail. Routes then declare their
scope (`Allowed("items:write")`, or `AllowedForUser("analytics:read")` where a `user:self` token
may act on its own user); a principal without it gets 403, also recorded, and the scope's rate
limit is taken here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from overdrive.domain.errors import Forbidden, Unauthenticated
from overdrive.security.audit import AuditTrail
from overdrive.security.auth import Authenticator
from overdrive.security.principal import Principal
from overdrive.security.rate_limit import RateLimiter

OPEN_PATHS = frozenset({"/health/live", "/health/ready"})


class AuthGuard:
    def __init__(self, app: ASGIApp, *, authenticator: Authenticator, audit: AuditTrail) -> None:
        self.app = app
        self.authenticator = authenticator
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        try:
            authorization = api_key = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = value.decode("latin-1")
                elif name == b"x-api-key":
                    api_key = value.decode("latin-1")
            state["principal"] = self.authenticator.authenticate(authorization=authorization, api_key=api_key)
        except Unauthenticated as exc:
            await self.audit.record_quietly(principal=None, action="auth.refused", target=scope["path"],
                                            request_id=state.get("request_id", ""), outcome="refused",
                                            detail={"reason": str(exc), "method": scope["method"]})
            await _unauthenticated(send, exc)
            return
        await self.app(scope, receive, send)


async def _unauthenticated(send: Send, exc: Unauthenticated) -> None:
    challenge = 'Bearer realm="overdrive"' + (', error="invalid_token"' if exc.presented else "")
    body = orjson.dumps({"error": "unauthenticated", "message": str(exc)})
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", challenge.encode())]})
    await send({"type": "http.response.body", "body": body})


def principal_of(request: Request) -> Principal:
    return request.scope["state"]["principal"]


async def authorize(request: Request, scope: str, *, user_id: str | None = None) -> Principal:
    """The caller, if it holds `scope` (over `user_id`'s data, a `user:self` token over its own);
    `Forbidden` otherwise. Takes the scope's rate limit."""
    principal = principal_of(request)
    allowed = principal.allows(scope) if user_id is None else principal.may_access_user(user_id, scope)
    services = request.app.state.services
    if not allowed:
        target = f"user:{user_id}" if user_id is not None else request.url.path
        await services.audit.record_quietly(principal=principal.id, action="auth.forbidden", target=target,
                                            request_id=request.scope["state"].get("request_id", ""),
                                            outcome="forbidden", detail={"scope": scope, "method": request.method})
        raise Forbidden(f"{principal.id} lacks the {scope!r} scope" + (f" for user {user_id!r}" if user_id else ""))
    limiter: RateLimiter = services.limiter
    if limiter.active:
        await limiter.check(principal, scope)
    return principal


def Allowed(scope: str) -> Callable[..., Awaitable[Principal]]:  # noqa: N802 - reads as a declaration
    """A route dependency: the caller holds `scope`."""

    async def check(request: Request) -> Principal:
        return await authorize(request, scope)

    return Depends(check)


def AllowedForUser(scope: str) -> Callable[..., Awaitable[Principal]]:  # noqa: N802
    """A route dependency for `/…/{user_id}` paths: `scope` over every user, or `user:self` over its own."""

    async def check(request: Request) -> Principal:
        return await authorize(request, scope, user_id=request.path_params["user_id"])

    return Depends(check)
