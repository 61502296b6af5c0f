"""The collaborative model in the service: train on demand, serve, fold in, survive a restart."""

from __future__ import annotations

import os
import time

from fastapi.testclient import TestClient

from overdrive.api import create_app
from overdrive.config import Settings
from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive.wiring import build_services
from tests.real_servers import app_env

CF_ENV = {"OVERDRIVE_CF_METHODS": "popularity,item_cosine,als", "OVERDRIVE_CF_TUNE": "false",
          "OVERDRIVE_FOLD_IN_EVERY": "20", "N_FACTORS": "16"}


def _wait_trained(client: TestClient, timeout_s: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get("/models/status").json()["collaborative"]
        if status["last_training"]["state"] in ("done", "failed"):
            return status
        time.sleep(0.2)
    raise AssertionError("training did not finish")


def test_train_serve_fold_in_and_restart(tmp_path) -> None:
    world = generate_world(WorldConfig(n_users=60, n_items=150, n_topics=4, n_days=10, signals_per_user=40, seed=3))
    settings = Settings.load(app_env(tmp_path, **CF_ENV))
    user = world.signals[0]["user_id"]
    candidates = [{"id": i["id"]} for i in world.items[:50]]
    with TestClient(create_app(build_services(settings))) as client:
        assert client.get("/models/status").json()["collaborative"]["serving"] is None
        before = client.post("/rank/for-you/enhanced", json={"user_id": user, "candidate_items": candidates}).json()
        assert all("collaborative" not in i["scores"] for i in before["items"])  # nothing trained yet

        client.post("/items/batch", json={"items": world.items})
        client.post("/signals/batch", json={"signals": world.signals})
        job = client.post("/models/train")
        assert job.status_code == 202 and job.json()["collaborative"]["state"] == "running"
        status = _wait_trained(client)
        assert status["last_training"]["state"] == "done", status["last_training"]
        assert status["last_training"]["fitted_by_process"] != os.getpid()  # a child's memory, gone with it
        serving = status["serving"]
        version = serving["version"]
        assert serving["methods"] == ["popularity", "item_cosine", "als"]
        assert serving["n_users"] == 60 and serving["fitted_at"] and status["artifacts"]["current_version"] == version
        assert client.get("/health/ready").json()["checks"]["models"]["collaborative"]["version"] == version

        ranked = client.post("/rank/for-you/enhanced", json={"user_id": user, "candidate_items": candidates}).json()
        assert all("collaborative" in i["scores"] for i in ranked["items"])
        cold = client.post("/rank/for-you/enhanced", json={"user_id": "never-seen", "candidate_items": candidates + [{"id": "new-item", "tags": ["x"]}]})
        assert cold.status_code == 200 and len(cold.json()["items"]) == 20

        # Twenty new interactions fold the touched users in without a retrain.
        folds = serving["folds"]
        fresh = [{"user_id": user, "signal_type": "like", "content_id": c["id"], "signal_id": f"new-{n}"}
                 for n, c in enumerate(candidates[:20])]
        client.post("/signals/batch", json={"signals": fresh})
        deadline = time.monotonic() + 30
        while client.get("/models/status").json()["collaborative"]["serving"]["folds"] == folds:
            assert time.monotonic() < deadline, "no fold-in after fold_in_every interactions"
            time.sleep(0.1)

    # A restart serves the saved version at once, without retraining.
    with TestClient(create_app(build_services(settings))) as client:
        status = client.get("/models/status").json()["collaborative"]
        assert status["serving"]["version"] == version
        assert status["last_training"] == {"state": "never run"}
        ranked = client.post("/rank/for-you/enhanced", json={"user_id": user, "candidate_items": candidates}).json()
        assert "collaborative" in ranked["items"][0]["scores"]


def test_train_on_start_when_no_model_is_saved(tmp_path) -> None:
    world = generate_world(WorldConfig(n_users=30, n_items=80, n_topics=3, n_days=5, signals_per_user=20, seed=4))
    quiet = Settings.load(app_env(tmp_path, **CF_ENV))
    with TestClient(create_app(build_services(quiet))) as client:
        client.post("/items/batch", json={"items": world.items})
        client.post("/signals/batch", json={"signals": world.signals})
    eager = Settings.load(app_env(tmp_path, OVERDRIVE_TRAIN_ON_START="true", **CF_ENV))
    with TestClient(create_app(build_services(eager))) as client:
        status = _wait_trained(client)
        assert status["last_training"]["reason"].startswith("start-up")
        assert status["serving"]["version"] is not None


def test_a_retrain_with_nothing_to_train_on_is_a_409(client: TestClient) -> None:
    r = client.post("/models/train")
    assert r.status_code == 409 and r.json()["error"] == "conflict" and "no signals" in r.json()["message"], r.text
    assert client.get("/models/status").json()["collaborative"]["last_training"]["state"] == "never run"
