"""Authentication: a request's credential becomes a `Principal`, or `Unauthenticated`.

Two credential kinds, both as `Authorization: Bearer …`: API keys (`odk_…`, also accepted as
`X-API-Key`) and JWTs. With no credential configured and the service bound to loopback,
authentication is off and every caller is `local` (an admin): the zero-setup laptop default.
Configuration refuses any other address without credentials (`overdrive.config`).
"""

from __future__ import annotations

import time

from overdrive.domain.errors import Unauthenticated
from overdrive.security.keys import KEY_PREFIX, KeyRing
from overdrive.security.principal import LOCAL, Principal, parse_scopes
from overdrive.security.tokens import JwtVerifier


class Authenticator:
    def __init__(self, *, keys: KeyRing | None = None, tokens: JwtVerifier | None = None) -> None:
        self._keys = keys
        self._tokens = tokens

    @property
    def enabled(self) -> bool:
        return self._keys is not None or self._tokens is not None

    def authenticate(self, *, authorization: str | None, api_key: str | None) -> Principal:
        if not self.enabled:
            return LOCAL
        credential = api_key
        if credential is None and authorization is not None:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise Unauthenticated("Authorization must be 'Bearer <API key or token>'", presented=True)
            credential = value.strip()
        if credential is None:
            raise Unauthenticated("credentials required: Authorization: Bearer <API key or token>, or X-API-Key")
        if credential.startswith(KEY_PREFIX) or api_key is not None:
            return self._key(credential)
        return self._token(credential)

    def _key(self, key: str) -> Principal:
        entry = self._keys.find(key) if self._keys is not None else None
        if entry is None:
            raise Unauthenticated("unknown API key", presented=True)
        if entry.expires_at is not None and time.time() >= entry.expires_at:
            raise Unauthenticated(f"API key {entry.id!r} has expired", presented=True)
        return entry.principal()

    def _token(self, token: str) -> Principal:
        if self._tokens is None:
            raise Unauthenticated("bearer tokens are not accepted here (no JWT verification configured)", presented=True)
        claims = self._tokens.verify(token)
        scopes = parse_scopes(claims.get("scope")) | parse_scopes(claims.get("scp"))
        subject = str(claims["sub"])
        return Principal(id=f"jwt:{subject}", scopes=scopes, subject=subject)
