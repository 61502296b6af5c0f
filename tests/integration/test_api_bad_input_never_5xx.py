"""Random malformed bodies against every write and rank endpoint: always a 4xx, never a 5xx."""

from __future__ import annotations

import json
import random

from fastapi.testclient import TestClient

ENDPOINTS = ["/signals/process", "/signals/batch", "/items", "/items/batch", "/rank/for-you/enhanced"]
FIELDS = ["user_id", "signal_type", "content_id", "duration", "intensity", "timestamp", "signal_id", "metadata",
          "id", "text", "type", "tags", "created_at", "image_url", "author_id", "candidate_items", "limit",
          "strategy", "signals", "items"]


def _junk(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1e308, -1e-9, 2**70, 7])
    if kind == 3:
        return rng.choice(["", "x" * 300, "view", "like", "2026-01-01", "ftp://a", "💥", "1e999"])
    if kind == 4:
        return rng.random() * 1e6
    if kind == 5:
        return "NaN"
    if kind == 6:
        return [_junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(FIELDS): _junk(rng, depth + 1) for _ in range(rng.randrange(6))}


def test_random_bodies_get_4xx_not_5xx(client: TestClient) -> None:
    rng = random.Random(1234)
    seen = set()
    for _ in range(600):
        path = rng.choice(ENDPOINTS)
        body = _junk(rng)
        if rng.random() < 0.1:
            raw = json.dumps(body)[: rng.randrange(1, 20)]  # truncated JSON
        else:
            raw = json.dumps(body, allow_nan=True)
        r = client.post(path, content=raw, headers={"content-type": "application/json"})
        assert r.status_code < 500, (path, raw, r.text)
        if r.status_code >= 400:
            assert "error" in r.json()
        seen.add(r.status_code)
    assert seen & {400, 422}
