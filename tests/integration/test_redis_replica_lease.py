"""Redis without Kafka serves one API replica: a second one on the same prefix is refused at
start (each would learn from its own signals alone), the same replica restarted takes its lease
over at once, and a replica whose lease another took says it is not ready."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from overdrive.api import create_app
from overdrive.config import Settings
from overdrive.store.redis_conn import RedisConnection
from overdrive.store.redis_replica_lease import RedisReplicaLease, ReplicaLeaseHeld
from overdrive.wiring import build_services
from tests import real_servers

if (_why := real_servers.shared_redis_missing()) is not None:
    real_servers.unavailable(_why)


@pytest.fixture
def prefix() -> Iterator[str]:
    p = real_servers.unique_prefix("lease")
    yield p
    real_servers.delete_prefix(real_servers.SHARED_REDIS_URL, p)


def _settings(data_dir: Path, prefix: str, **extra: str) -> Settings:
    return Settings.load({"REDIS_URL": real_servers.SHARED_REDIS_URL, "OVERDRIVE_REDIS_PREFIX": prefix,
                          "OVERDRIVE_DATA_DIR": str(data_dir), "MODEL_CACHE_DIR": str(data_dir / "models"),
                          "OVERDRIVE_TRAIN_ON_START": "false", "OVERDRIVE_RETRAIN_INTERVAL_MINUTES": "0",
                          "OVERDRIVE_CONTENT_FEATURES": "false", **extra})


def test_a_second_replica_without_kafka_is_refused_until_the_first_stops(tmp_path: Path, prefix: str) -> None:
    with TestClient(create_app(build_services(_settings(tmp_path / "a", prefix)))) as first:
        with pytest.raises(ReplicaLeaseHeld, match="KAFKA_BOOTSTRAP_SERVERS") as refused:
            build_services(_settings(tmp_path / "b", prefix))
        assert str(tmp_path / "a") in str(refused.value)  # it names the replica that holds the prefix
        ready = first.get("/health/ready").json()
        assert ready["status"] == "ready" and ready["checks"]["replica_lease"]["ok"], ready
        assert first.post("/items/batch", json={"items": [{"id": "i1"}]}).status_code == 201
    # Stopped: the lease is let go, and another replica may serve the prefix.
    with TestClient(create_app(build_services(_settings(tmp_path / "b", prefix)))) as second:
        assert second.get("/items/i1").status_code == 200
    # With the opt-in, several replicas may share it (each retrains on its own signals).
    allow = {"OVERDRIVE_ALLOW_REPLICAS_WITHOUT_KAFKA": "true"}
    with TestClient(create_app(build_services(_settings(tmp_path / "a", prefix, **allow)))) as a, \
            TestClient(create_app(build_services(_settings(tmp_path / "b", prefix, **allow)))) as b:
        assert a.get("/health/ready").status_code == b.get("/health/ready").status_code == 200


def test_the_same_replica_restarted_takes_its_lease_over(tmp_path: Path, prefix: str) -> None:
    connection = RedisConnection(real_servers.SHARED_REDIS_URL)
    # A replica on folder "a" that died without letting go: its lease lives on for its ttl.
    RedisReplicaLease(connection=connection, prefix=prefix, data_dir=tmp_path / "a", ttl_s=600).acquire()
    with pytest.raises(ReplicaLeaseHeld):
        build_services(_settings(tmp_path / "b", prefix))
    with TestClient(create_app(build_services(_settings(tmp_path / "a", prefix)))) as restarted:
        assert restarted.get("/health/ready").status_code == 200
    connection.sync.close()


def test_a_replica_whose_lease_was_taken_is_not_ready(tmp_path: Path, prefix: str) -> None:
    async def run() -> None:
        connection = RedisConnection(real_servers.SHARED_REDIS_URL)
        lease = RedisReplicaLease(connection=connection, prefix=prefix, data_dir=tmp_path / "a", ttl_s=0.3).acquire()
        await lease.start()
        try:
            assert await lease.check()
            other = json.dumps({"replica": "elsewhere:/data", "pid": 1, "token": "t"})
            redis.Redis.from_url(real_servers.SHARED_REDIS_URL).set(f"{prefix}replica-lease", other, px=60_000)
            await asyncio.sleep(0.5)  # a renewal or two
            with pytest.raises(ReplicaLeaseHeld):
                await lease.check()
        finally:
            await lease.release()
            await connection.close()
        assert redis.Redis.from_url(real_servers.SHARED_REDIS_URL).get(f"{prefix}replica-lease") == other.encode()

    asyncio.run(run())
