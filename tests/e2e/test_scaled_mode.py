"""Scaled mode end to end: API replicas and a worker as real processes, Tansu, and real Redis.

- Read-your-writes across processes: likes sent to replica A lift their topic in the very next
  ranking from replica B (the worker applied them; B waited on the Redis watermarks).
- Every replica reads the signal topic for its in-process learners: a like taken by A labels the
  impression of the ranking B served; and B retrains the collaborative model from the whole topic.
- Worker SIGKILLed mid-stream and restarted: resumes from committed offsets; the all-time counts
  equal the distinct acknowledged signals exactly (no loss, no double count).
- Broker SIGSTOPped: the API answers 503 with Retry-After within a bounded time and readiness
  names kafka; after SIGCONT the client's retries with the same ids succeed, counted once.
- Redis killed and restarted (a private redis-server with an AOF, on the same port): readiness
  names the store while it is down, signals acknowledged meanwhile are applied once it is back,
  and writes work again — the clients reconnect on their own. SIGTERM stops the worker cleanly.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from overdrive.evaluation.server_process import ServerProcess
from tests import real_servers

pytestmark = pytest.mark.timeout(180)

if (_why := real_servers.tansu_missing() or real_servers.shared_redis_missing() or real_servers.redis_server_missing()) is not None:
    real_servers.unavailable(_why)

TOPIC = "overdrive-e2e"
CATS = [{"id": f"cat{n}", "type": "video", "tags": ["cats"], "author_id": "kit"} for n in range(10)]
OTHERS = [{"id": f"car{n}", "type": "text", "tags": ["cars"], "author_id": f"a{n % 3}"} for n in range(30)]


@dataclass
class Scaled:
    broker: real_servers.Tansu
    replicas: list[ServerProcess]
    worker: real_servers.WorkerProcess
    env: dict[str, str]
    tmp: Path


def _env(broker: real_servers.Tansu, redis_url: str, prefix: str, tmp: Path) -> dict[str, str]:
    return {
        "MODEL_CACHE_DIR": str(tmp / "models"),  # shared by the replicas, as a deployment's volume would be
        "OVERDRIVE_COMPILED_MODELS_DIR": str(real_servers.COMPILED_MODELS_DIR),
        "OVERDRIVE_RETRAIN_INTERVAL_MINUTES": "0",
        "REDIS_URL": redis_url,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "OVERDRIVE_KAFKA_TOPIC": TOPIC,
        "OVERDRIVE_KAFKA_PARTITIONS": "4",
        "OVERDRIVE_REDIS_PREFIX": prefix,
        "OVERDRIVE_KAFKA_DELIVERY_TIMEOUT_MS": "3000",
        "OVERDRIVE_KAFKA_SESSION_TIMEOUT_MS": "6000",
    }


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scaled]:
    tmp = tmp_path_factory.mktemp("scaled")
    broker = real_servers.Tansu(log_dir=tmp).start()
    broker.create_topic(TOPIC, partitions=4)
    prefix = real_servers.unique_prefix("e2e")
    env = _env(broker, real_servers.SHARED_REDIS_URL, prefix, tmp)
    replicas: list[ServerProcess] = []
    worker = real_servers.WorkerProcess(env=env, log_path=tmp / "worker.log")
    try:
        replicas = [ServerProcess(data_dir=tmp / f"api{n}", env=env).start() for n in range(2)]
        worker.start()
        with httpx.Client(base_url=replicas[0].url, timeout=10.0) as client:  # wait for the group join
            warm = {"user_id": "warm-up", "signal_type": "view", "content_id": "none", "signal_id": "warm-up"}
            assert client.post("/signals/process", json=warm).status_code == 200
            _wait_counts(client, {"warm-up": Counter(view=1)}, settle_s=0.0)
        yield Scaled(broker, replicas, worker, env, tmp)
    finally:
        if broker.stopped_by_us:
            broker.resume()
        worker.kill()
        for r in replicas:
            r.stop()
        broker.stop()
        real_servers.delete_prefix(real_servers.SHARED_REDIS_URL, prefix)


def _counts(client: httpx.Client, user: str) -> Counter:
    return Counter(client.get(f"/analytics/user/{user}").json()["signal_counts"])


def _wait_counts(client: httpx.Client, expected: dict[str, Counter], timeout_s: float = 40.0, settle_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        got = {u: _counts(client, u) for u in expected}
        if got == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got == expected
    time.sleep(settle_s)  # and nothing more arrives afterwards (no double counting)
    assert {u: _counts(client, u) for u in expected} == expected


def test_likes_on_one_replica_lift_the_topic_on_another(scaled: Scaled) -> None:
    a, b = (httpx.Client(base_url=r.url, timeout=10.0) for r in scaled.replicas)
    assert a.post("/items/batch", json={"items": CATS + OTHERS}).status_code == 201
    rank = {"user_id": "fan", "candidate_items": [{"id": i["id"]} for i in OTHERS + CATS], "limit": 10}
    before = [i["id"] for i in b.post("/rank/for-you/enhanced", json=rank).json()["items"]]
    assert not set(before) & {i["id"] for i in CATS}, before
    for n in range(3):
        r = a.post("/signals/process", json={"user_id": "fan", "signal_type": "like", "content_id": f"cat{n}", "signal_id": f"fan-{n}"})
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 1
    ranked = b.post("/rank/for-you/enhanced", json=rank)
    assert ranked.status_code == 200, ranked.text
    top = [i["id"] for i in ranked.json()["items"]]
    # The liked topic leads; the liked items themselves have left the feed (the worker recorded
    # them in Redis), and one author ("kit") gets at most 3 of the top 10 (OVERDRIVE_MAX_PER_AUTHOR).
    assert all(t.startswith("cat") for t in top[:3]), top
    assert not set(top) & {"cat0", "cat1", "cat2"}, top
    assert sum(t.startswith("cat") for t in top) == 3, top
    assert _counts(b, "fan") == {"like": 3}
    ready = b.get("/health/ready").json()
    assert ready["checks"]["store"]["ok"] and ready["checks"]["kafka"]["ok"]


def test_a_click_taken_by_one_replica_labels_the_ranking_another_served(scaled: Scaled) -> None:
    """Replicas read the topic for their in-process learners (here the learned blend's labels)."""
    a, b = (httpx.Client(base_url=r.url, timeout=10.0) for r in scaled.replicas)
    assert a.post("/items/batch", json={"items": OTHERS}).status_code == 201
    rank = {"user_id": "clicker", "candidate_items": [{"id": i["id"]} for i in OTHERS], "limit": 10}
    shown = b.post("/rank/for-you/enhanced", json=rank).json()["items"]

    def clicked(client: httpx.Client) -> int:
        return client.get("/models/status").json()["blend"]["impressions_clicked"]

    assert clicked(b) == 0
    like = {"user_id": "clicker", "signal_type": "like", "content_id": shown[0]["id"], "signal_id": "clicker-0"}
    assert a.post("/signals/process", json=like).status_code == 200
    deadline = time.monotonic() + 20.0
    while clicked(b) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert clicked(b) == 1
    assert clicked(a) == 0  # a served no ranking to this user: nothing of its own to label


def test_a_replica_retrains_the_collaborative_model_from_the_whole_topic(scaled: Scaled) -> None:
    """With Kafka the topic is the signal log: signals taken by A train the model B retrains."""
    a, b = (httpx.Client(base_url=r.url, timeout=10.0) for r in scaled.replicas)
    assert a.post("/items/batch", json={"items": OTHERS}).status_code == 201
    likes = [{"user_id": f"cf{u}", "signal_type": "like", "content_id": OTHERS[(u * 7 + k) % len(OTHERS)]["id"],
              "signal_id": f"cf{u}-{k}"} for u in range(12) for k in range(6)]
    assert a.post("/signals/batch", json={"signals": likes}).status_code == 200
    rank = {"user_id": "cf0", "candidate_items": [{"id": i["id"]} for i in OTHERS], "limit": 10}
    assert b.post("/models/train").status_code == 202
    deadline = time.monotonic() + 90.0
    while (job := b.get("/models/status").json()["collaborative"]["last_training"])["state"] == "running":
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["state"] == "done", job
    assert job["signals"] >= len(likes)  # all of A's, and whatever earlier tests produced
    assert "collaborative" in b.post("/rank/for-you/enhanced", json=rank).json()["items"][0]["scores"]


def _applied(scaled: Scaled, users: list[str]) -> int:
    """Signals of `users` in the live state, read straight from Redis (no read-your-writes wait)."""
    import redis

    client = redis.Redis.from_url(scaled.env["REDIS_URL"])
    try:
        prefix = scaled.env["OVERDRIVE_REDIS_PREFIX"]
        return sum(int(v) for u in users for v in client.hvals(f"{prefix}{{u:{u}}}:c"))
    finally:
        client.close()


def _stream(url: str, signals: list[dict], acked: list[dict], lock: threading.Lock, batch: int = 20) -> None:
    """Send until done; a batch counts as acknowledged on 200 only (503s are retried as-is)."""
    with httpx.Client(base_url=url, timeout=15.0) as client:
        for start in range(0, len(signals), batch):
            chunk = signals[start : start + batch]
            for _ in range(100):
                r = client.post("/signals/batch", json={"signals": chunk})
                if r.status_code == 200:
                    with lock:
                        acked.extend(chunk)
                    break
                assert r.status_code == 503 and r.headers.get("retry-after"), r.text
                time.sleep(0.1)


def test_worker_killed_mid_stream_resumes_without_loss_or_double_count(scaled: Scaled) -> None:
    users = [f"k{n}" for n in range(8)]
    kinds = ["view", "like", "share", "click", "skip"]
    signals = [
        {"user_id": users[n % 8], "signal_type": kinds[n % 5], "content_id": f"car{n % 30}", "signal_id": f"kill-{n}"}
        for n in range(3000)
    ]
    acked: list[dict] = []
    lock = threading.Lock()
    lanes = [threading.Thread(target=_stream, args=(r.url, signals[i::2], acked, lock, 5)) for i, r in enumerate(scaled.replicas)]
    for t in lanes:
        t.start()
    while _applied(scaled, users) < 300:  # kill while the worker is busy applying the stream
        time.sleep(0.002)
    scaled.worker.kill()  # SIGKILL: mid-batch, nothing flushed, nothing committed past state
    time.sleep(0.5)
    scaled.worker.start()
    for t in lanes:
        t.join(120)
    assert len(acked) == len(signals)
    expected: dict[str, Counter] = {}
    for s in acked:
        expected.setdefault(s["user_id"], Counter())[s["signal_type"]] += 1
    with httpx.Client(base_url=scaled.replicas[0].url, timeout=10.0) as client:
        _wait_counts(client, expected)


def test_stalled_broker_answers_503_then_retries_count_once(scaled: Scaled) -> None:
    url = scaled.replicas[1].url
    with httpx.Client(base_url=url, timeout=30.0) as client:
        sent = [{"user_id": "stall", "signal_type": "like", "content_id": f"cat{n}", "signal_id": f"stall-{n}"} for n in range(6)]
        assert client.post("/signals/batch", json={"signals": sent[:2]}).status_code == 200
        scaled.broker.pause()
        try:
            started = time.monotonic()
            r = client.post("/signals/batch", json={"signals": sent[2:]})
            elapsed = time.monotonic() - started
            assert r.status_code == 503, r.text
            assert int(r.headers["retry-after"]) >= 1
            assert elapsed < 10.0  # delivery timeout 3 s, plus slack
            ready = client.get("/health/ready")
            assert ready.status_code == 503 and ready.json()["checks"]["kafka"]["ok"] is False
            time.sleep(max(0.0, 6.0 - (time.monotonic() - started)))
        finally:
            scaled.broker.resume()
        deadline = time.monotonic() + 30
        while (r := client.post("/signals/batch", json={"signals": sent[2:]})).status_code != 200:
            assert r.status_code == 503 and time.monotonic() < deadline, r.text
            time.sleep(0.2)
        deadline = time.monotonic() + 10  # readiness is answered from a copy refreshed every second
        while (ready := client.get("/health/ready")).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.1)
        _wait_counts(client, {"stall": Counter(like=6)})


def test_redis_restart_is_survived(tmp_path: Path) -> None:
    redis = real_servers.RedisServer(appendonly=True).start()
    broker = real_servers.Tansu(log_dir=tmp_path).start()
    broker.create_topic(TOPIC, partitions=2)
    env = _env(broker, redis.url, "od:", tmp_path)
    worker = real_servers.WorkerProcess(env=env, log_path=tmp_path / "worker.log")
    api = ServerProcess(data_dir=tmp_path / "api", env=env)
    try:
        api.start()
        worker.start()
        with httpx.Client(base_url=api.url, timeout=15.0) as client:
            def send(n: int) -> httpx.Response:
                return client.post("/signals/process", json={"user_id": "r", "signal_type": "view", "content_id": "x", "signal_id": f"r{n}"})

            assert send(0).status_code == 200
            _wait_counts(client, {"r": Counter(view=1)})

            redis.kill()
            deadline = time.monotonic() + 10  # readiness is answered from a copy refreshed every second
            while (ready := client.get("/health/ready")).status_code != 503:
                assert time.monotonic() < deadline, ready.text
                time.sleep(0.1)
            assert ready.json()["checks"]["store"]["ok"] is False and ready.json()["checks"]["kafka"]["ok"] is True
            assert send(1).status_code == 200  # Kafka holds it; the worker retries until Redis is back
            assert client.post("/rank/for-you/enhanced", json={"user_id": "r", "candidate_items": [{"id": "x"}]}).status_code == 503

            redis.start()
            deadline = time.monotonic() + 20
            while client.get("/health/ready").status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert send(2).status_code == 200
            _wait_counts(client, {"r": Counter(view=3)})
        assert worker.terminate() == 0  # SIGTERM: finish the batch, commit, leave the group
        assert "worker stopped" in worker.log_path.read_text()
    finally:
        worker.kill()
        api.stop()
        broker.stop()
        redis.stop()
