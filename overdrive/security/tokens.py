"""JWT verification with PyJWT: an explicit algorithm allow-list, one key family per algorithm.

HS256 tokens are checked against `OVERDRIVE_JWT_SECRET`; RS256/ES256 (and the other RSA/EC
algorithms when allowed) against the JWKS key named by the token's `kid`, from a file or a URL
(PyJWT's `PyJWKClient`, which caches the set). `alg: none` is never accepted, and an algorithm
is only ever verified with a key of its own family, so a token signed with HS256 using a public
RSA key as the secret (algorithm confusion) fails. `exp` is required; `nbf`, and `iss`/`aud`
when configured, are checked. Verified tokens are remembered until they expire, so a client
that sends the same token on every request pays for the signature once.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWKClient, PyJWKSet

from overdrive.domain.errors import Unauthenticated

_FAMILIES = {"HS": "oct", "RS": "RSA", "PS": "RSA", "ES": "EC"}
_CACHE_MAX = 10_000


class JwtVerifier:
    def __init__(
        self,
        *,
        algorithms: list[str],
        secret: str | None = None,
        jwks_file: Path | None = None,
        jwks_url: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        leeway_s: float = 30.0,
    ) -> None:
        if "none" in {a.lower() for a in algorithms}:
            raise ValueError("the 'none' algorithm is never allowed")
        self._algorithms = frozenset(algorithms)
        self._secret = secret
        self._jwks = PyJWKSet.from_dict(json.loads(jwks_file.read_text())) if jwks_file else None
        self._client = PyJWKClient(jwks_url, cache_keys=True, lifespan=300) if jwks_url else None
        self._issuer, self._audience, self._leeway = issuer, audience, leeway_s
        self._verified: OrderedDict[str, tuple[dict[str, Any], float]] = OrderedDict()

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; `Unauthenticated` saying why it is refused."""
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None and now < hit[1] + self._leeway:
            return hit[0]
        claims = self._decode(token)
        self._verified[token] = (claims, float(claims["exp"]))
        if len(self._verified) > _CACHE_MAX:
            self._verified.popitem(last=False)
        return claims

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"malformed token: {exc}", presented=True) from None
        alg = str(header.get("alg", ""))
        if alg not in self._algorithms:
            raise Unauthenticated(f"token algorithm {alg!r} is not allowed (allowed: {sorted(self._algorithms)})",
                                  presented=True)
        key = self._key(alg, header.get("kid"))
        required = ["exp", "sub", *(["iss"] if self._issuer else []), *(["aud"] if self._audience else [])]
        try:
            return jwt.decode(token, key, algorithms=[alg], issuer=self._issuer, audience=self._audience,
                              leeway=self._leeway, options={"require": required, "verify_aud": bool(self._audience)})
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"token refused: {exc}", presented=True) from None

    def _key(self, alg: str, kid: object) -> Any:
        family = _FAMILIES.get(alg[:2])
        if family == "oct":
            if self._secret is None:
                raise Unauthenticated(f"{alg} tokens are not accepted here (no shared secret configured)", presented=True)
            return self._secret
        try:
            if self._jwks is not None:
                matches = [k for k in self._jwks.keys if kid is None or k.key_id == kid]
                jwk = matches[0] if matches else None
            elif self._client is not None:
                jwk = self._client.get_signing_key(str(kid)) if kid is not None else None
            else:
                jwk = None
        except jwt.PyJWKClientError as exc:
            raise Unauthenticated(f"no signing key for kid {kid!r}: {exc}", presented=True) from None
        if jwk is None:
            raise Unauthenticated(f"no signing key for kid {kid!r}", presented=True)
        if jwk.key_type != family:
            raise Unauthenticated(f"key {kid!r} is {jwk.key_type}, not a key for {alg}", presented=True)
        return jwk.key
