"""The API with `REDIS_URL` (standalone or Cluster) and no Kafka: state and catalog in Redis.

Two app instances on one Redis prefix stand for two replicas (or a restart): what one wrote the
other reads, and a restart does not replay the local log into Redis (that would double counts).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from overdrive.api import create_app
from overdrive.config import Settings, SettingsError
from overdrive.wiring import build_services
from tests import real_servers

if (_why := real_servers.shared_redis_missing()) is not None:
    real_servers.unavailable(_why)


@pytest.fixture(params=["standalone", "cluster"])
def redis_url(request: pytest.FixtureRequest) -> str:
    if request.param == "standalone":
        return real_servers.SHARED_REDIS_URL
    if (why := real_servers.redis_server_missing()) is not None:
        real_servers.unavailable(why)
    return real_servers.shared_cluster().url


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    p = real_servers.unique_prefix("api")
    yield p
    real_servers.delete_prefix(redis_url, p)


def _app(tmp: Path, prefix: str, redis_url: str) -> TestClient:
    settings = Settings.load({
        "REDIS_URL": redis_url, "OVERDRIVE_REDIS_PREFIX": prefix,
        "OVERDRIVE_DATA_DIR": str(tmp), "MODEL_CACHE_DIR": str(tmp / "models"),
        "OVERDRIVE_TRAIN_ON_START": "false", "OVERDRIVE_RETRAIN_INTERVAL_MINUTES": "0",
        "OVERDRIVE_ALLOW_REPLICAS_WITHOUT_KAFKA": "true",  # two replicas at once (test_redis_replica_lease: refused without)
    })
    return TestClient(create_app(build_services(settings)))


def test_state_is_shared_and_survives_restart_without_replay(tmp_path: Path, prefix: str, redis_url: str) -> None:
    items = [{"id": f"cat{n}", "type": "video", "tags": ["cats"]} for n in range(4)] + \
            [{"id": f"car{n}", "type": "text", "tags": ["cars"]} for n in range(8)]
    with _app(tmp_path / "a", prefix, redis_url) as a:
        assert a.post("/items/batch", json={"items": items}).status_code == 201
        likes = [{"user_id": "u", "signal_type": "like", "content_id": "cat0"},
                 {"user_id": "u", "signal_type": "like", "content_id": "cat1", "signal_id": "l1"}]
        assert a.post("/signals/batch", json={"signals": likes}).json()["accepted"] == 2
        assert a.post("/signals/process", json=likes[1]).json()["duplicates"] == 1
        ranked = a.post("/rank/for-you/enhanced", json={"user_id": "u", "candidate_items": [{"id": i["id"]} for i in reversed(items)], "limit": 4, "exclude_seen": False})
        assert {i["id"] for i in ranked.json()["items"]} == {"cat0", "cat1", "cat2", "cat3"}
        ready = a.get("/health/ready").json()
        assert ready["checks"]["store"] == {"ok": True, "backend": "redis-cluster" if "cluster=1" in redis_url else "redis"}
        assert ready["checks"]["signal_log"]["ok"]

    with _app(tmp_path / "a", prefix, redis_url) as restarted, _app(tmp_path / "b", prefix, redis_url) as other:
        for client in (restarted, other):
            assert client.get("/analytics/user/u").json()["signal_counts"] == {"like": 2}
            assert client.get("/items/cat3").json()["tags"] == ["cats"]
            assert client.get("/performance/system").json()["store"]["items"] == 12
            # The liked items have left u's feed on every replica; the rest of their topic leads it.
            ranked = client.post("/rank/for-you/enhanced", json={"user_id": "u", "candidate_items": [{"id": i["id"]} for i in items], "limit": 2})
            assert {i["id"] for i in ranked.json()["items"]} == {"cat2", "cat3"}


def test_kafka_without_redis_is_a_settings_error(tmp_path: Path) -> None:
    settings = Settings.load({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", "OVERDRIVE_DATA_DIR": str(tmp_path)})
    with pytest.raises(SettingsError, match="REDIS_URL"):
        build_services(settings)


def test_prefix_with_braces_is_rejected() -> None:
    with pytest.raises(ValueError, match="OVERDRIVE_REDIS_PREFIX|redis_prefix"):
        Settings.load({"OVERDRIVE_REDIS_PREFIX": "a{b}"})


def test_replicas_agree_on_experiments_assignments_and_exposures(tmp_path: Path, prefix: str, redis_url: str) -> None:
    """Definitions, assignment and the exposure log are shared: any replica answers any user alike,
    and after a restart too."""
    body = {"name": "shared", "state": "running", "salt": "fixed",
            "arms": [{"name": "a", "strategy": "enhanced"}, {"name": "b", "strategy": "freshness"}]}
    users = [f"u{n}" for n in range(30)]
    with _app(tmp_path / "one", prefix, redis_url) as one, _app(tmp_path / "two", prefix, redis_url) as two:
        one.post("/items/batch", json={"items": [{"id": f"i{n}"} for n in range(5)]})
        experiment = one.post("/experiments", json=body).json()
        assert two.get(f"/experiments/{experiment['id']}").json()["arms"] == experiment["arms"]
        seen_one = {u: one.get(f"/experiments/assignment/{u}").json()["assignments"] for u in users}
        seen_two = {u: two.get(f"/experiments/assignment/{u}").json()["assignments"] for u in users}
        assert seen_one == seen_two and {a[0]["arm"] for a in seen_one.values()} == {"a", "b"}
        for n, user in enumerate(users):  # half the rankings on each replica
            served = (one if n % 2 else two).post("/rank/for-you/enhanced", json={"user_id": user}).json()
            assert served["experiment"]["arm"] == seen_one[user][0]["arm"]
        results = one.get(f"/experiments/{experiment['id']}/results").json()  # flushes only its own buffer
        two_results = two.get(f"/experiments/{experiment['id']}/results").json()
        assert two_results["feeds"] == 30 and two_results["users"] == 30 and results["feeds"] >= 15
    with _app(tmp_path / "three", prefix, redis_url) as restarted:
        again = {u: restarted.get(f"/experiments/assignment/{u}").json()["assignments"] for u in users}
        assert again == seen_one
