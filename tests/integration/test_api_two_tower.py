"""The two-tower model in the service, through the real app: trained on `POST /models/train` as an
ensemble member, served as the `two_tower` strategy and component, as a retrieval source for
catalog ranking, and for items written after the training, on a planted world whose topics are
known."""

from __future__ import annotations

import time

import numpy as np
from fastapi.testclient import TestClient

from overdrive.api import create_app
from overdrive.config import Settings
from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive.wiring import build_services
from tests.real_servers import RELEVANCE_ONLY, app_env

ENV = {"OVERDRIVE_CF_METHODS": "popularity,two_tower", "OVERDRIVE_CF_TUNE": "false", "OVERDRIVE_FOLD_IN_EVERY": "50",
       **RELEVANCE_ONLY}


def _rank(client: TestClient, user: str, strategy: str, candidates: list[str] | None = None, limit: int = 10) -> list[dict]:
    body: dict = {"user_id": user, "strategy": strategy, "limit": limit}
    if candidates is not None:
        body["candidate_items"] = [{"id": i} for i in candidates]
    answer = client.post("/rank/for-you/enhanced", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def test_the_two_tower_strategy_ranks_by_the_users_taste(tmp_path) -> None:
    world = generate_world(WorldConfig(n_users=150, n_items=240, n_topics=4, signals_per_user=60, seed=11,
                                       exploration=0.1, zipf_exponent=0.7, interest_concentration=0.2))
    topic = {i["id"]: int(t) for i, t in zip(world.items, world.item_topic)}
    late = [i for i in world.items[::8]]  # written after the training
    late_ids = {i["id"] for i in late}
    focused = {u: int(np.argmax(t)) for u, t in zip(world.user_ids, world.user_topics) if t.max() > 0.7}
    with TestClient(create_app(build_services(Settings.load(app_env(tmp_path, **ENV))))) as client:
        strategies = client.get("/rank/strategies").json()["strategies"]
        assert strategies["two_tower"] == {"two_tower": 1.0} and strategies["enhanced"]["two_tower"] == 0.0
        user = next(iter(focused))
        assert all("two_tower" not in i["scores"] for i in _rank(client, user, "two_tower", list(topic)[:20]))

        client.post("/items/batch", json={"items": [i for i in world.items if i["id"] not in late_ids]})
        client.post("/signals/batch", json={"signals": [s for s in world.signals if s["content_id"] not in late_ids]})
        assert client.post("/models/train").status_code == 202
        deadline = time.monotonic() + 300
        while (status := client.get("/models/status").json()["collaborative"])["last_training"]["state"] == "running":
            assert time.monotonic() < deadline, "training did not finish"
            time.sleep(0.2)
        assert status["last_training"]["state"] == "done", status["last_training"]
        assert "two_tower" in status["serving"]["members"]
        ready = client.get("/health/ready").json()["checks"]["models"]
        assert ready["two_tower"] == {"served": True, "version": status["serving"]["version"]}

        # Catalog ranking (no candidates): the user tower's nearest items, of the user's topic.
        on_topic = []
        for user, t in focused.items():
            items = _rank(client, user, "two_tower")
            assert len(items) == 10 and all(-1.0 <= i["scores"]["two_tower"] <= 1.0 for i in items)
            on_topic.append(np.mean([topic[i["id"]] == t for i in items]))
        assert len(on_topic) >= 20 and np.mean(on_topic) >= 0.7, np.mean(on_topic)
        # Weight 0 in the configured blend: computed only where a blend asks for it.
        assert all("two_tower" not in i["scores"] for i in _rank(client, user, "enhanced"))

        # Items written now are placed by the item tower from their content, without a retrain.
        client.post("/items/batch", json={"items": late})
        deadline = time.monotonic() + 30
        while len({round(i["score"], 6) for i in _rank(client, user, "two_tower", sorted(late_ids), 30)}) < 10:
            assert time.monotonic() < deadline, "new items never got item-tower vectors"
            time.sleep(0.1)
        aucs = []
        for user, t in focused.items():
            items = _rank(client, user, "two_tower", sorted(late_ids), len(late_ids))
            mine = np.array([topic[i["id"]] == t for i in items])  # in rank order
            if mine.any() and (~mine).any():
                ranks = np.arange(len(items))
                aucs.append((ranks[mine][:, None] < ranks[~mine][None, :]).mean())
        assert np.mean(aucs) >= 0.8, np.mean(aucs)
