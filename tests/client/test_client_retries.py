"""The client's retries against a real service that refuses, stalls or dies: nothing lost, nothing
counted twice.

- 429: a service with a small signal buffer refuses batches that would overflow it (Retry-After);
  the sender waits at least as long as asked and every signal is counted once.
- Restart: the service process is SIGKILLed mid-stream and started again on its data folder; the
  sender's batches meet refused connections and lost answers, are retried with the same ids, and
  the durable log and the counts hold each signal exactly once.
- 503: in the scaled deployment (Redis, a Kafka-protocol broker, a worker) the broker is
  SIGSTOPped mid-stream, so the API answers 503; the counts the worker applies equal the signals
  sent, exactly.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from overdrive.evaluation.server_process import ServerProcess
from overdrive_client import Client, Retry
from overdrive_client import types as t
from tests import real_servers
from tests.real_servers import app_env

pytestmark = pytest.mark.timeout(240)
KINDS: list[t.SignalType] = ["view", "like", "share", "click", "skip"]


def stream(n: int, users: int, prefix: str) -> list[t.Signal]:
    """Signals without ids: the sender gives each its own before it is first sent."""
    return [{"user_id": f"{prefix}{i % users}", "signal_type": KINDS[i % len(KINDS)], "content_id": f"item{i % 50}"}
            for i in range(n)]


def expected_counts(signals: list[t.Signal]) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for s in signals:
        out.setdefault(s["user_id"], Counter())[s["signal_type"]] += 1
    return out


def counts(od: Client, users: list[str]) -> dict[str, Counter[str]]:
    return {u: Counter(od.user_analytics(u)["signal_counts"]) for u in users}


def wait_for_counts(od: Client, expected: dict[str, Counter[str]], timeout_s: float = 60.0) -> None:
    """The counts reach `expected` and stay there (a late double count would show)."""
    deadline = time.monotonic() + timeout_s
    while (got := counts(od, list(expected))) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert got == expected
    time.sleep(1.0)
    assert counts(od, list(expected)) == expected


class Sleeps:
    """Records every wait the retry loop asks for (and waits it)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


def retried_for(caplog: pytest.LogCaptureFixture) -> Counter[str]:
    """Why the client retried, from its log lines ("... failed (HTTP 429); retry 1 of 30 in 1.02s")."""
    return Counter(r.getMessage().split(" failed (", 1)[1].split(")", 1)[0].split(":")[0]
                   for r in caplog.records if r.name == "overdrive_client" and " failed (" in r.getMessage())


def test_429_is_waited_out_and_counts_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = app_env(tmp_path, SIGNAL_BUFFER_SIZE="300")
    signals = stream(6000, users=6, prefix="busy")
    sleeps = Sleeps()
    with ServerProcess(data_dir=tmp_path / "data", env=env) as server, Client(server.url) as od:
        with od.signal_sender(batch_size=250, max_in_flight=4, retry=Retry(attempts=30, sleep=sleeps)) as sender:
            sender.extend(signals)
        assert sender.stats.retries > 0, "the small buffer should have refused some batches"
        assert set(retried_for(caplog)) == {"HTTP 429"}, retried_for(caplog)
        assert all(w >= 1.0 for w in sleeps.waits), sleeps.waits  # Retry-After: 1 (at least) honoured
        assert (sender.stats.given, sender.stats.acknowledged, sender.stats.accepted) == (6000, 6000, 6000)
        assert sender.stats.duplicates == 0  # a 429 stored nothing: the retry was the first arrival
        assert od.performance()["store"]["signals"] == 6000
        wait_for_counts(od, expected_counts(signals))


def test_a_service_restarted_mid_stream_loses_and_double_counts_nothing(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    env = app_env(tmp_path)
    signals = stream(60_000, users=20, prefix="rs")
    first = ServerProcess(data_dir=tmp_path / "data", env=env).start()
    second = ServerProcess(data_dir=tmp_path / "data", env=env, port=first.port)
    restarted = threading.Event()
    try:
        with Client(first.url, timeout=10.0) as od:
            sender = od.signal_sender(batch_size=500, max_in_flight=3, retry=Retry(attempts=12, base_s=0.1, max_s=2.0))

            def restart() -> None:
                while sender.stats.acknowledged < 10_000:
                    time.sleep(0.001)
                first.kill()  # SIGKILL while batches are in flight: some stored, their answers lost
                time.sleep(0.5)  # refused connections meanwhile
                second.start()
                restarted.set()

            killer = threading.Thread(target=restart)
            killer.start()
            with sender:
                sender.extend(signals)
            killer.join(60)
            assert restarted.is_set()
            stats = sender.stats
            assert stats.retries > 0
            assert "ConnectError" in retried_for(caplog), retried_for(caplog)  # refused while it was down
            print(f"restart: {stats}; retried for {dict(retried_for(caplog))}")
            assert (stats.given, stats.acknowledged) == (60_000, 60_000)
            # Batches stored before the kill whose answers were lost come back as duplicates.
            assert stats.accepted + stats.duplicates == 60_000
            assert od.performance()["store"]["signals"] == 60_000
            wait_for_counts(od, expected_counts(signals))
    finally:
        first.kill()
        second.stop()


# ---------------------------------------------------------------------------- scaled: 503

@pytest.fixture
def scaled(tmp_path: Path) -> Iterator[tuple[ServerProcess, real_servers.Tansu]]:
    why = real_servers.tansu_missing() or real_servers.shared_redis_missing()
    if why is not None:
        real_servers.unavailable(why)
    broker = real_servers.Tansu(log_dir=tmp_path).start()
    topic = "client-retries"
    broker.create_topic(topic, partitions=2)
    prefix = real_servers.unique_prefix("client")
    env = {"MODEL_CACHE_DIR": str(tmp_path / "models"), "OVERDRIVE_COMPILED_MODELS_DIR": str(real_servers.COMPILED_MODELS_DIR),
           "OVERDRIVE_RETRAIN_INTERVAL_MINUTES": "0", "REDIS_URL": real_servers.SHARED_REDIS_URL,
           "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "OVERDRIVE_KAFKA_TOPIC": topic, "OVERDRIVE_KAFKA_PARTITIONS": "2",
           "OVERDRIVE_REDIS_PREFIX": prefix, "OVERDRIVE_KAFKA_DELIVERY_TIMEOUT_MS": "2000",
           "OVERDRIVE_KAFKA_SESSION_TIMEOUT_MS": "6000"}
    worker = real_servers.WorkerProcess(env=env, log_path=tmp_path / "worker.log")
    api = ServerProcess(data_dir=tmp_path / "api", env=env)
    try:
        api.start()
        worker.start()
        yield api, broker
    finally:
        if broker.stopped_by_us:
            broker.resume()
        worker.kill()
        api.stop()
        broker.stop()
        real_servers.delete_prefix(real_servers.SHARED_REDIS_URL, prefix)


def test_503_from_a_stalled_broker_is_retried_and_counts_once(scaled: tuple[ServerProcess, real_servers.Tansu],
                                                               caplog: pytest.LogCaptureFixture) -> None:
    api, broker = scaled
    signals = stream(4000, users=8, prefix="stall")
    sleeps = Sleeps()
    with Client(api.url, timeout=20.0) as od:
        od.send_signal({"user_id": "warm-up", "signal_type": "view", "content_id": "none"})
        wait_for_counts(od, {"warm-up": Counter(view=1)})  # the worker has joined its group
        sender = od.signal_sender(batch_size=100, max_in_flight=2, retry=Retry(attempts=40, max_s=2.0, sleep=sleeps))

        def stall() -> None:
            while sender.stats.acknowledged < 1000:
                time.sleep(0.001)
            broker.pause()
            time.sleep(5.0)
            broker.resume()

        staller = threading.Thread(target=stall)
        staller.start()
        with sender:
            sender.extend(signals)
        staller.join(30)
        assert sender.stats.retries > 0, "the stalled broker should have made the API answer 503"
        assert "HTTP 503" in retried_for(caplog), retried_for(caplog)
        assert all(w >= 1.0 for w in sleeps.waits), sleeps.waits  # Retry-After: 1 honoured
        assert (sender.stats.given, sender.stats.acknowledged) == (4000, 4000)
        wait_for_counts(od, expected_counts(signals))
