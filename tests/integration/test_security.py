"""Authentication, scopes and the audit trail over the real app, with real keys and real tokens
signed by PyJWT: HS256 from a secret, RS256 and ES256 from a JWKS file."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from overdrive.api import create_app
from overdrive.config import Settings, SettingsError
from overdrive.security.keys import KeyEntry, append_key, key_digest, new_key, remove_key
from overdrive.wiring import build_services
from tests.real_servers import app_env
from tests.waiting import eventually

SECRET = "s" * 40
ISSUER, AUDIENCE = "https://idp.example", "overdrive"


class Keys:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.issued: dict[str, str] = {}

    def api_key(self, key_id: str, *scopes: str, **extra: object) -> str:
        key = new_key()
        append_key(self.path, KeyEntry(id=key_id, sha256=key_digest(key), scopes=frozenset(scopes), **extra))
        return key

    def jwks(self, path: Path) -> Path:
        keys = []
        for kid, key, algorithm in (("r1", self.rsa, RSAAlgorithm), ("e1", self.ec, ECAlgorithm)):
            jwk = json.loads(algorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid})
        path.write_text(json.dumps({"keys": keys}))
        return path

    def token(self, sub: str, scope: str, *, alg: str = "HS256", **claims: object) -> str:
        body = {"sub": sub, "scope": scope, "iss": ISSUER, "aud": AUDIENCE, "exp": time.time() + 300, **claims}
        if alg == "HS256":
            return jwt.encode(body, SECRET, algorithm="HS256")
        key, kid = (self.rsa, "r1") if alg == "RS256" else (self.ec, "e1")
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path / "keys.json")


@pytest.fixture
def secured(tmp_path: Path, keys: Keys) -> Iterator[tuple[TestClient, Keys, Settings]]:
    keys.api_key("bootstrap", "admin")  # the file exists before start-up
    settings = Settings.load(app_env(tmp_path, OVERDRIVE_API_KEYS_FILE=str(keys.path), OVERDRIVE_JWT_SECRET=SECRET,
                                     OVERDRIVE_JWKS_FILE=str(keys.jwks(tmp_path / "jwks.json")),
                                     OVERDRIVE_JWT_ISSUER=ISSUER, OVERDRIVE_JWT_AUDIENCE=AUDIENCE,
                                     OVERDRIVE_JWT_ALGORITHMS="HS256,RS256,ES256"))
    with TestClient(create_app(build_services(settings))) as client:
        yield client, keys, settings


def _bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def _until(client: TestClient, key: str, status: int) -> None:
    """Until the service, which re-reads the keys file within a second of a change, answers a
    request with `key` with `status`."""
    asyncio.run(eventually(lambda: client.get("/rank/strategies", headers=_bearer(key)).status_code == status,
                           timeout_s=10, what=f"key answered {status}"))


def _audit(client: TestClient, admin: str, **filters: str) -> list[dict]:
    return client.get("/audit", params=filters, headers=_bearer(admin)).json()["records"]


def test_only_health_is_open(secured) -> None:
    client, _, _ = secured
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200
    for path in ("/rank/strategies", "/docs", "/openapi.json", "/items/x", "/nowhere", "/"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == 'Bearer realm="overdrive"'
        assert r.json()["error"] == "unauthenticated"


def test_api_keys_by_bearer_or_header_and_scopes(secured) -> None:
    client, keys, _ = secured
    ranker = keys.api_key("ranker", "rank")
    _until(client, ranker, 200)  # added while running: no restart
    assert client.get("/rank/strategies", headers={"X-API-Key": ranker}).status_code == 200
    assert client.post("/items", json={"id": "a"}, headers=_bearer(ranker)).status_code == 403
    refused = client.get("/rank/strategies", headers=_bearer(ranker[:-2] + "xx"))
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]


def test_expired_and_revoked_keys_are_refused(secured) -> None:
    client, keys, _ = secured
    old = keys.api_key("old", "rank", expires_at=time.time() - 1)
    gone = keys.api_key("gone", "rank")
    _until(client, gone, 200)
    assert client.get("/rank/strategies", headers=_bearer(old)).status_code == 401
    remove_key(keys.path, "gone")
    _until(client, gone, 401)


@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256"])
def test_valid_tokens_of_each_algorithm_carry_their_scopes(secured, alg: str) -> None:
    client, keys, _ = secured
    token = keys.token("svc", "rank items:read", alg=alg)
    assert client.get("/rank/strategies", headers=_bearer(token)).status_code == 200
    assert client.post("/models/train", headers=_bearer(token)).status_code == 403
    scp = jwt.encode({"sub": "svc", "scp": ["models:admin"], "iss": ISSUER, "aud": AUDIENCE, "exp": time.time() + 60},
                     SECRET, algorithm="HS256")
    assert client.post("/models/train", headers=_bearer(scp)).status_code == 409  # allowed; nothing to train on


def test_bad_tokens_are_refused(secured) -> None:
    client, keys, _ = secured
    now = time.time()
    public_pem = keys.rsa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = jwt.utils.base64url_encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).decode()
    claims = {"sub": "x", "scope": "admin", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 60}
    payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    bad = {
        "expired": keys.token("x", "admin", exp=now - 120),
        "not yet valid": keys.token("x", "admin", nbf=now + 600),
        "wrong audience": keys.token("x", "admin", aud="someone-else"),
        "wrong issuer": keys.token("x", "admin", iss="https://evil.example"),
        "wrong secret": jwt.encode(claims, "t" * 40, algorithm="HS256"),
        "alg none": f"{header}.{payload}.",
        # Algorithm confusion: HS256 "signed" with the RSA public key as the shared secret.
        "HS/RS confusion": _hs256_by_hand({"alg": "HS256", "typ": "JWT", "kid": "r1"}, claims, public_pem),
        "unknown kid": jwt.encode(claims, keys.rsa, algorithm="RS256", headers={"kid": "nope"}),
        "no exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, SECRET, algorithm="HS256"),
        "garbage": "not.a.token",
    }
    for what, token in bad.items():
        r = client.get("/rank/strategies", headers=_bearer(token))
        assert r.status_code == 401, (what, r.text)
        assert 'error="invalid_token"' in r.headers["www-authenticate"], what


def _hs256_by_hand(header: dict, claims: dict, secret: bytes) -> str:
    """What PyJWT itself refuses to make: an HMAC over a public key."""
    signing = b".".join(jwt.utils.base64url_encode(json.dumps(part).encode()) for part in (header, claims))
    return (signing + b"." + jwt.utils.base64url_encode(hmac.new(secret, signing, hashlib.sha256).digest())).decode()


def test_a_user_token_reaches_only_its_own_data(secured) -> None:
    client, keys, _ = secured
    admin = keys.api_key("ops", "admin")
    _until(client, admin, 200)
    signals = [{"user_id": u, "signal_type": "like", "content_id": "i1"} for u in ("alice", "bob")]
    assert client.post("/signals/batch", json={"signals": signals}, headers=_bearer(admin)).status_code == 200
    alice = _bearer(keys.token("alice", "user:self"))
    assert client.get("/analytics/user/alice", headers=alice).json()["total_signals"] == 1
    assert client.get("/analytics/user/alice/realtime", headers=alice).status_code == 200
    assert client.get("/insights/alice", headers=alice).status_code == 200
    assert client.get("/users/alice/export", headers=alice).json()["user_id"] == "alice"
    for path in ("/analytics/user/bob", "/insights/bob", "/users/bob/export", "/rank/strategies", "/analytics/trending"):
        assert client.get(path, headers=alice).status_code == 403, path
    assert client.delete("/users/bob", headers=alice).status_code == 403
    job = client.delete("/users/alice", headers=alice)
    assert job.status_code == 202
    assert client.get(f"/users/erasures/{job.json()['job_id']}", headers=alice).status_code == 200
    bob = _bearer(keys.token("bob", "user:self"))
    assert client.get(f"/users/erasures/{job.json()['job_id']}", headers=bob).status_code == 403


def test_the_audit_trail_records_reads_admin_actions_and_failures_in_an_intact_chain(secured, tmp_path: Path) -> None:
    client, keys, settings = secured
    admin = keys.api_key("ops", "admin")
    reader = keys.api_key("reader", "rank")
    _until(client, reader, 200)
    client.get("/rank/strategies", headers=_bearer("odk_wrong"))
    client.get("/analytics/user/carol", headers=_bearer(reader))  # forbidden
    client.get("/analytics/user/carol", headers=_bearer(admin))
    client.post("/items", json={"id": "i9"}, headers=_bearer(admin))
    client.delete("/items/i9", headers=_bearer(admin))
    client.post("/models/train", headers=_bearer(admin))
    actions = [r["action"] for r in _audit(client, admin)]
    for expected in ("auth.refused", "auth.forbidden", "user.read", "item.delete", "models.train", "keys.reload"):
        assert expected in actions, (expected, actions)
    carol = _audit(client, admin, user="carol")
    assert {r["action"] for r in carol} == {"auth.forbidden", "user.read"}
    assert {r["principal"] for r in carol} == {"key:reader", "key:ops"}
    assert all(r["request_id"] for r in carol)
    assert _audit(client, admin, principal="key:ops", action="item.delete")[0]["target"] == "item:i9"

    services = client.app.state.services
    report = services.audit.verify()
    assert report["intact"] and report["records"] >= 8
    db = sqlite3.connect(settings.data_dir / "overdrive.sqlite3")  # an insider edits one record
    seq, raw = db.execute("SELECT seq, record FROM audit WHERE action = 'item.delete'").fetchone()
    db.execute("UPDATE audit SET record = ? WHERE seq = ?", (raw.replace(b"key:ops", b"key:xxx"), seq))
    db.commit()
    db.close()
    broken = services.audit.verify()
    assert not broken["intact"] and broken["broken_at"] == seq and "changed" in broken["reason"]


def test_rate_limits_per_credential_and_scope(tmp_path: Path, keys: Keys) -> None:
    slow = keys.api_key("slow", "rank", rate=(0.5, 2.0))
    fast = keys.api_key("fast", "rank")
    settings = Settings.load(app_env(tmp_path, OVERDRIVE_API_KEYS_FILE=str(keys.path),
                                     OVERDRIVE_RATE_LIMITS='{"rank": [1000, 1000]}'))
    with TestClient(create_app(build_services(settings))) as client:
        codes = [client.get("/rank/strategies", headers=_bearer(slow)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = client.get("/rank/strategies", headers=_bearer(slow))
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert all(client.get("/rank/strategies", headers=_bearer(fast)).status_code == 200 for _ in range(20))


def test_json_only_bodies_and_cross_site_forms_are_refused(secured) -> None:
    client, keys, _ = secured
    key = keys.api_key("ops", "admin")
    _until(client, key, 200)
    admin = _bearer(key)
    form = client.post("/models/train", content=b"a=1", headers={**admin, "Content-Type": "application/x-www-form-urlencoded",
                                                                  "Origin": "https://evil.example"})
    assert form.status_code == 415
    text = client.post("/signals/process", content=b'{"user_id": "u"}', headers={**admin, "Content-Type": "text/plain"})
    assert text.status_code == 415
    assert client.post("/models/train", headers=admin).status_code == 409  # no body, no type: allowed (no signals yet)
    assert client.post("/models/train").status_code == 401  # and a state change always needs credentials


def test_start_up_refuses_a_public_bind_without_credentials(tmp_path: Path, keys: Keys) -> None:
    with pytest.raises((SettingsError, ValueError), match="OVERDRIVE_HOST.*without credentials"):
        Settings.load(app_env(tmp_path, OVERDRIVE_HOST="0.0.0.0"))
    keys.api_key("ops", "admin")
    assert Settings.load(app_env(tmp_path, OVERDRIVE_HOST="0.0.0.0", OVERDRIVE_API_KEYS_FILE=str(keys.path))).auth_configured
    assert not Settings.load(app_env(tmp_path)).auth_configured  # loopback, nothing configured: open


def test_loopback_without_credentials_is_open(client: TestClient) -> None:
    assert client.get("/rank/strategies").status_code == 200
    assert client.post("/models/train").status_code == 409  # allowed; nothing to train on yet
