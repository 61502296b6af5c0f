"""Credentials: an API key (`X-API-Key`) or a JWT (`Authorization: Bearer`), as httpx auth flows.

A token may be a callable returning the current token, read on every request, so a platform that
rotates short-lived JWTs hands the client its token source once.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import httpx


class ApiKey(httpx.Auth):
    """Sends the key as `X-API-Key` (the service also accepts it as a bearer token)."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("an API key must not be empty")
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["X-API-Key"] = self._key
        yield request


class BearerToken(httpx.Auth):
    """Sends `Authorization: Bearer <token>`; `token` is a string or a callable giving the current one."""

    def __init__(self, token: str | Callable[[], str]) -> None:
        if not token:
            raise ValueError("a token must not be empty")
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._token() if callable(self._token) else self._token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


def auth_from(api_key: str | None, token: str | Callable[[], str] | None) -> httpx.Auth | None:
    if api_key is not None and token is not None:
        raise ValueError("give api_key or token, not both")
    if api_key is not None:
        return ApiKey(api_key)
    if token is not None:
        return BearerToken(token)
    return None
