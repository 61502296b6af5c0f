"""GDPR erasure and export through the real app: every store the user was in, after a restart and
a retrain; in Redis (SCAN for the user's keys) and through a Kafka topic that cannot forget."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from overdrive.api import create_app
from overdrive.config import Settings
from overdrive.wiring import build_services
from tests import real_servers
from tests.real_servers import app_env

USER = "zed-erasable"
ITEMS = [{"id": f"i{n}", "text": f"item {n}", "tags": [f"t{n % 3}"]} for n in range(12)]


def _signals(user: str, n: int, tag: str) -> list[dict]:
    return [{"user_id": user, "signal_type": "like", "content_id": f"i{k % 12}", "signal_id": f"{user}-{tag}-{k}",
             "metadata": {"note": f"{user}-private-note"}} for k in range(n)]


def _world(client: TestClient) -> None:
    assert client.post("/items/batch", json={"items": ITEMS}).status_code == 201
    signals = _signals(USER, 8, "a") + [s for u in range(6) for s in _signals(f"other{u}", 6, "a")]
    assert client.post("/signals/batch", json={"signals": signals}).status_code == 200


def _train(client: TestClient) -> None:
    assert client.post("/models/train").status_code == 202
    deadline = time.monotonic() + 120
    while client.get("/models/status").json()["collaborative"]["last_training"]["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert client.get("/models/status").json()["collaborative"]["last_training"]["state"] == "done"


def _erase(client: TestClient, user: str = USER) -> dict:
    job = client.delete(f"/users/{user}")
    assert job.status_code == 202
    deadline = time.monotonic() + 120
    while (done := client.get(f"/users/erasures/{job.json()['job_id']}").json())["state"] == "running":
        assert time.monotonic() < deadline, done
        time.sleep(0.05)
    assert done["state"] == "done", done
    return done


def _model_ids(settings: Settings) -> str:
    """Every file of every saved collaborative model version, as text."""
    return "".join(p.read_text(errors="replace") for p in (settings.model_cache_dir / "collaborative").rglob("*.json"))


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[TestClient, Settings]]:
    settings = Settings.load(app_env(tmp_path, OVERDRIVE_CF_METHODS="popularity,item_cosine,als", OVERDRIVE_CF_TUNE="false"))
    with TestClient(create_app(build_services(settings))) as client:
        yield client, settings


def test_erasure_leaves_no_trace_in_any_embedded_store(embedded) -> None:
    client, settings = embedded
    _world(client)
    _train(client)
    for _ in range(3):  # logged rankings: impressions in the learned blend, rankings in insights
        assert client.post("/rank/for-you/enhanced", json={"user_id": USER, "limit": 5}).status_code == 200
    assert client.get(f"/analytics/user/{USER}").json()["total_signals"] == 8
    assert USER in _model_ids(settings)

    job = _erase(client)
    assert job["steps"]["signal_log"] == {"deleted": 8, "compacted": True}
    assert job["steps"]["settled"] is True
    assert job["steps"]["impressions"] > 0
    assert job["steps"]["collaborative_model"]["older_versions"] == "deleted"

    services = client.app.state.services
    assert client.get(f"/analytics/user/{USER}").json()["known"] is False
    assert client.get(f"/insights/{USER}").json()["rankings_seen"] == 0
    assert not any(imp.user_id == USER for imp in services.blend._log)  # noqa: SLF001 - the impression log itself
    cf = services.collaborative.model()
    assert USER not in cf._user_index and all(USER not in m._user_index for m in cf.members.values())  # noqa: SLF001
    assert USER not in _model_ids(settings)
    assert len(list((settings.model_cache_dir / "collaborative" / "versions").iterdir())) == 1
    data = b"".join(p.read_bytes() for p in settings.data_dir.glob("overdrive.sqlite3*"))
    assert f"{USER}-private-note".encode() not in data and f"{USER}-a-0".encode() not in data

    export = client.get(f"/users/{USER}/export").json()
    assert export["signals"] == [] and export["analytics"]["known"] is False
    assert {r["action"] for r in export["audit"]} >= {"user.read", "user.erase", "user.erased", "user.export"}
    _train(client)  # a retrain from the log after the erasure does not bring them back
    assert USER not in _model_ids(settings)
    assert client.delete(f"/users/{USER}").status_code == 202  # idempotent


def test_erasure_survives_a_restart_and_a_later_signal_is_a_new_user(tmp_path: Path) -> None:
    settings = Settings.load(app_env(tmp_path))
    with TestClient(create_app(build_services(settings))) as client:
        _world(client)
        _erase(client)
    with TestClient(create_app(build_services(settings))) as client:  # the replay of the log at start-up
        assert client.get(f"/analytics/user/{USER}").json()["known"] is False
        assert client.post("/signals/batch", json={"signals": _signals(USER, 2, "a")}).status_code == 200
        profile = client.get(f"/analytics/user/{USER}").json()
        assert profile["total_signals"] == 2  # the same ids, counted again: a new user


def test_export_is_complete_and_streams_as_ndjson(embedded) -> None:
    client, _ = embedded
    _world(client)
    export = client.get(f"/users/{USER}/export").json()
    assert export["schema"] == "overdrive.user-export/1" and export["user_id"] == USER
    assert [s["signal_id"] for s in export["signals"]] == [f"{USER}-a-{k}" for k in range(8)]
    assert export["analytics"]["signal_counts"] == {"like": 8}
    assert set(export) >= {"realtime", "insights", "interests", "audit", "exported_at"}
    assert export["interests"]["long_term"]
    lines = [json.loads(line) for line in client.get(f"/users/{USER}/export", params={"format": "ndjson"}).text.splitlines()]
    assert lines[0]["type"] == "header" and lines[0]["user_id"] == USER
    assert [x["signal_id"] for x in lines if x["type"] == "signal"] == [f"{USER}-a-{k}" for k in range(8)]
    assert any(x["type"] == "audit" and x["action"] == "user.export" for x in lines)


def test_erasure_in_redis_leaves_no_key_of_the_user(tmp_path: Path) -> None:
    if (why := real_servers.shared_redis_missing()) is not None:
        real_servers.unavailable(why)
    import redis

    prefix = real_servers.unique_prefix("privacy")
    settings = Settings.load(app_env(tmp_path, REDIS_URL=real_servers.SHARED_REDIS_URL, OVERDRIVE_REDIS_PREFIX=prefix))
    plain = redis.Redis.from_url(real_servers.SHARED_REDIS_URL)
    try:
        with TestClient(create_app(build_services(settings))) as client:
            _world(client)
            assert client.get(f"/analytics/user/{USER}").json()["total_signals"] == 8
            mine = [k for k in plain.scan_iter(match=f"{prefix}*") if USER.encode() in k]
            assert mine  # state, markers, windows, profiles
            _erase(client)
            assert [k for k in plain.scan_iter(match=f"{prefix}*") if USER.encode() in k] == []
            for key in plain.scan_iter(match=f"{prefix}*"):  # nor inside any value (recent signals…)
                kind = plain.type(key)
                if kind == b"string":
                    assert USER.encode() not in (plain.get(key) or b""), key
                elif kind == b"list":
                    assert not any(USER.encode() in v for v in plain.lrange(key, 0, -1)), key
            assert client.get(f"/analytics/user/{USER}").json()["known"] is False
            assert client.get("/analytics/user/other0").json()["total_signals"] == 6
    finally:
        for key in plain.scan_iter(match=f"{prefix}*"):
            plain.delete(key)


def test_a_kafka_replay_skips_an_erased_user_but_not_their_later_signals(tmp_path: Path) -> None:
    """The topic cannot forget: the erasure list (digest, time) is what every reader honours."""
    if (why := real_servers.tansu_missing()) is not None:
        real_servers.unavailable(why)
    from confluent_kafka import Producer

    from overdrive.domain.codec import encode_signal, signal_from_dict
    from overdrive.domain.privacy import user_digest
    from overdrive.stream.kafka_history import KafkaSignalHistory

    broker = real_servers.Tansu(log_dir=tmp_path).start()
    try:
        broker.create_topic("privacy", partitions=2)
        producer = Producer({"bootstrap.servers": broker.bootstrap})

        def produce(signals: list[dict]) -> None:
            for s in signals:
                producer.produce("privacy", key=s["user_id"].encode(),
                                 value=encode_signal(signal_from_dict({**s, "timestamp": time.time()})))
            producer.flush(10)

        produce(_signals(USER, 4, "before") + _signals("keep", 3, "a"))
        erased_at = time.time()
        time.sleep(0.01)  # record timestamps are milliseconds: the later ones must be after it
        produce(_signals(USER, 2, "after"))
        history = KafkaSignalHistory(bootstrap_servers=broker.bootstrap, topic="privacy", partitions=2)
        everything = [s.signal_id for batch in history.scan() for s in batch]
        assert len(everything) == 9
        kept = [s.signal_id for batch in history.scan(erased={user_digest(USER): erased_at}) for s in batch]
        assert sorted(kept) == sorted([f"keep-a-{k}" for k in range(3)] + [f"{USER}-after-{k}" for k in range(2)])
    finally:
        broker.stop()


def test_a_user_named_erasures_can_be_exported(client: TestClient) -> None:
    """`/users/erasures/export` is that user's export, not the erasure job "export"."""
    client.post("/items/batch", json={"items": [{"id": "a"}]})
    assert client.post("/signals/process", json={"user_id": "erasures", "signal_type": "like", "content_id": "a"}).status_code == 200
    exported = client.get("/users/erasures/export")
    assert exported.status_code == 200 and exported.json()["user_id"] == "erasures", exported.text
    assert client.get("/users/erasures/0123abcd").status_code == 404
