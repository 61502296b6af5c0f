"""The learned blend fitted from imported history, through the API: a retrain replays the signal
history as of a time cut and fits the blend on what users took to after it, so the default feed is
tuned before any impression is logged."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from overdrive.api.app_factory import create_app
from overdrive.config import Settings
from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive.wiring import build_services
from tests.real_servers import app_env

# Configured weights that lean on freshness; the catalog's dates below carry no signal at all.
FRESHNESS_HEAVY = '{"freshness": 3.0}'


@pytest.fixture
def history_settings(tmp_path: Path) -> Settings:
    return Settings.load(app_env(tmp_path, OVERDRIVE_RANKING_WEIGHTS=FRESHNESS_HEAVY,
                                 OVERDRIVE_CF_METHODS="ease,item_cosine,popularity"))


def _import_history(client: TestClient) -> str:
    """A synthetic world's catalog and signals; returns one of its users."""
    world = generate_world(WorldConfig(n_users=300, n_items=500, n_topics=6, n_days=14, signals_per_user=40, seed=3))
    # Dates that say nothing: every item made within the two days before the last tenth of the
    # history (where the blend's cut falls), at random, so freshness tells items apart but not why
    # they are taken.
    rng = random.Random(0)
    late = sorted(s["timestamp"] for s in world.signals)[int(0.9 * len(world.signals))]
    items = [{**item, "created_at": late - rng.uniform(1, 2 * 86400)} for item in world.items]
    assert client.post("/items/batch", json={"items": items}).status_code == 201
    for start in range(0, len(world.signals), 5000):
        assert client.post("/signals/batch", json={"signals": world.signals[start:start + 5000]}).status_code == 200
    return world.user_ids[0]


def _trained(client: TestClient) -> dict:
    assert client.post("/models/train").status_code == 202
    deadline = time.monotonic() + 120  # a safety net: the retrain takes a few seconds
    while (status := client.get("/models/status").json())["collaborative"]["last_training"]["state"] == "running":
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    return status["blend"]


def test_a_retrain_fits_the_blend_on_history_and_the_default_feed_serves_it(history_settings: Settings) -> None:
    with TestClient(create_app(build_services(history_settings))) as client:
        configured = client.get("/rank/strategies").json()
        assert configured["default"] == "learned"
        assert configured["strategies"]["learned"] == configured["strategies"]["enhanced"]  # nothing fitted yet
        user = _import_history(client)
        blend = _trained(client)
        fitted = blend["from_history"]
        assert blend["history_job"]["state"] == "fitted", blend["history_job"]
        assert blend["serving"] == "weights fitted from history"
        weights = fitted["weights"]
        # Freshness carries no signal here: the configured 3.0 (of 4.05) falls to ~0, and the
        # components that do carry it (who liked what, what is popular) take the weight.
        assert configured["strategies"]["enhanced"]["freshness"] == 3.0
        assert weights["freshness"] < 0.05, weights
        assert weights["collaborative"] > 0.1 and weights["real_time"] > 0.1, weights
        assert {"collaborative", "real_time", "user_interests", "freshness"} <= set(fitted["components_said"])
        # Components that said nothing (no content features, no context, no two-tower member)
        # keep their configured share: no evidence is not evidence against.
        total = sum(configured["strategies"]["enhanced"].values())
        assert weights["context"] == pytest.approx(configured["strategies"]["enhanced"]["context"] / total, abs=1e-6)
        check = fitted["check"]
        assert check["ndcg_at_10_fitted"] > check["ndcg_at_10_configured"], check
        assert fitted["users"] >= 20 and fitted["clicked"] >= 20 and fitted["signals_before_cut"] < fitted["signals"]

        strategies = client.get("/rank/strategies").json()["strategies"]
        assert strategies["learned"] == weights and strategies["enhanced"] == configured["strategies"]["enhanced"]
        served = client.post("/rank/for-you/enhanced", json={"user_id": user, "limit": 10}).json()
        assert served["strategy"] == "learned" and len(served["items"]) == 10
        assert not any("freshness" in i["scores"] and i["scores"]["freshness"] > 0.05 for i in served["items"])

        again = _trained(client)  # the same history: not fitted again
        assert again["history_job"]["state"] == "fitted" and again["from_history"]["fitted_at"] == fitted["fitted_at"]

    with TestClient(create_app(build_services(history_settings))) as client:  # a restart keeps the fit
        assert client.get("/rank/strategies").json()["strategies"]["learned"] == weights


def test_with_too_little_history_the_configured_weights_stay(tmp_path: Path) -> None:
    settings = Settings.load(app_env(tmp_path))
    with TestClient(create_app(build_services(settings))) as client:
        now = time.time()
        assert client.post("/items/batch", json={"items": [{"id": f"i{n}"} for n in range(5)]}).status_code == 201
        signals = [{"user_id": "u", "content_id": f"i{n}", "signal_type": "like", "timestamp": now - 100 + n}
                   for n in range(5)]
        assert client.post("/signals/batch", json={"signals": signals}).status_code == 200
        blend = _trained(client)
        assert blend["history_job"]["state"] == "skipped" and blend["from_history"] is None, blend
        strategies = client.get("/rank/strategies").json()["strategies"]
        assert strategies["learned"] == strategies["enhanced"]


def test_the_blend_from_history_can_be_turned_off(tmp_path: Path) -> None:
    settings = Settings.load(app_env(tmp_path, OVERDRIVE_BLEND_FROM_HISTORY="false", OVERDRIVE_DEFAULT_STRATEGY="enhanced"))
    with TestClient(create_app(build_services(settings))) as client:
        assert client.get("/rank/strategies").json()["default"] == "enhanced"
        assert client.get("/models/status").json()["blend"]["history_job"] == {"state": "off"}
