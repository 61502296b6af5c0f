"""KafkaSignalBus and the worker loop against a real broker (Tansu) and the shared Redis.

In one process: the bus produces, a `KafkaSignalWorker` task consumes into a Redis FeatureStore.
Checked: read-your-writes through the watermarks, redelivered ids change nothing, a stalled
broker (SIGSTOP) is a `BackendUnavailable` (the producer's delivery timeout ends the wait) and the
health check fails, and after SIGCONT the same ids go through and are counted once.

No test sleeps for a guessed time: each waits on the thing itself (the worker task has ended, the
stalled producer has every delivery report, a signal published last has been seen or applied).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from collections import Counter
from dataclasses import dataclass

import pytest

from overdrive.domain.errors import BackendUnavailable
from overdrive.domain.types import Item, Signal
from overdrive.observability.performance import PerformanceMonitor
from overdrive.store.feature_config import FeatureConfig
from overdrive.stream.applier import Learners, SignalApplier
from tests import real_servers
from tests.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

if (_why := real_servers.tansu_missing() or real_servers.shared_redis_missing()) is not None:
    real_servers.unavailable(_why)

TOPIC = "signals"


@dataclass
class Rig:
    broker: real_servers.Tansu
    bus: object
    features: object
    catalog: object
    stop: asyncio.Event
    worker: asyncio.Task

    async def stop_worker(self) -> None:
        """Stop the fixture's worker and wait until it has left its group: nothing more is applied."""
        self.stop.set()
        await asyncio.wait_for(self.worker, 30)


@pytest.fixture
async def rig(tmp_path) -> AsyncIterator[Rig]:
    from overdrive.store.redis_catalog import RedisItemCatalog
    from overdrive.store.redis_conn import RedisConnection
    from overdrive.store.redis_feature_store import RedisFeatureStore
    from overdrive.store.redis_watermarks import RedisWatermarks
    from overdrive.stream.kafka_bus import KafkaSignalBus
    from overdrive.stream.kafka_consumer import KafkaSignalWorker

    broker = real_servers.Tansu(log_dir=tmp_path).start()
    broker.create_topic(TOPIC, partitions=3)
    prefix = real_servers.unique_prefix("kafka")
    redis = RedisConnection(real_servers.SHARED_REDIS_URL)
    features = RedisFeatureStore(connection=redis, config=FeatureConfig(), prefix=prefix)
    catalog = RedisItemCatalog(connection=redis, prefix=prefix)
    watermarks = RedisWatermarks(connection=redis, topic=TOPIC, prefix=prefix)
    bus = KafkaSignalBus(bootstrap_servers=broker.bootstrap, topic=TOPIC, watermarks=watermarks, delivery_timeout_ms=2000)
    worker = KafkaSignalWorker(bootstrap_servers=broker.bootstrap, topic=TOPIC, group="g",
                               applier=SignalApplier(features=features, catalog=catalog, monitor=PerformanceMonitor()),
                               watermarks=watermarks, session_timeout_ms=6000)
    stop = asyncio.Event()
    await bus.start()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield Rig(broker, bus, features, catalog, stop, task)
    finally:
        if broker.stopped_by_us:
            broker.resume()
        stop.set()
        await asyncio.wait_for(task, 30)
        await worker.close()
        await bus.close()
        await redis.close()
        broker.stop()
        real_servers.delete_prefix(real_servers.SHARED_REDIS_URL, prefix)


def _sig(user: str, n: int, stype: str = "like", **kw) -> Signal:
    return Signal(user_id=user, signal_type=stype, content_id=f"c{n % 5}", timestamp=time.time(), signal_id=f"{user}-{n}", **kw)


async def _counts(rig: Rig, user: str) -> dict[str, int]:
    return (await rig.features.user_activity(user, now=time.time())).signal_counts


async def test_read_your_writes_and_redelivery(rig: Rig) -> None:
    await rig.catalog.put([Item(id="c0", tags=("cats",))])
    first = await rig.bus.publish([_sig("ann", n) for n in range(10)])
    assert len(first) == 10
    # The worker joins its group on the first poll; settled waits for it.
    assert await rig.bus.settled("ann", timeout_s=20.0)
    assert await _counts(rig, "ann") == {"like": 10}
    assert (await rig.features.user_interests("ann", now=time.time()))["tag:cats"] > 0

    # Redelivery of the same ids (a client retry) is produced again and skipped by the worker.
    again = await rig.bus.publish([_sig("ann", n) for n in range(10)] + [_sig("ann", 10, "share")])
    assert len(again) == 11
    assert await rig.bus.settled("ann", timeout_s=10.0)
    assert await _counts(rig, "ann") == {"like": 10, "share": 1}

    # A signal without an id gets one, so its redelivery is covered too.
    (anon,) = await rig.bus.publish([Signal(user_id="bob", signal_type="view", content_id="c1", timestamp=time.time())])
    assert anon.signal_id
    assert await rig.bus.settled("bob", timeout_s=10.0)
    assert await _counts(rig, "bob") == {"view": 1}
    assert (await rig.bus.check())["partitions"] == 3


async def test_settled_is_false_while_unapplied(rig: Rig) -> None:
    await rig.stop_worker()  # the worker has left; nothing more is applied
    await rig.bus.publish([_sig("cy", 1)])
    assert await rig.bus.settled("cy", timeout_s=0.2) is False
    assert await rig.bus.settled("nobody", timeout_s=0.2) is True


async def test_stalled_broker_is_unavailable_then_retry_counts_once(rig: Rig) -> None:
    await rig.bus.publish([_sig("dee", 0)])
    assert await rig.bus.settled("dee", timeout_s=20.0)

    rig.broker.pause()
    stalled = rig.bus._producer  # noqa: SLF001 - the producer whose deliveries stall
    with pytest.raises(BackendUnavailable):  # not a hang: the producer's delivery timeout (2 s) ends it
        await rig.bus.publish([_sig("dee", n) for n in range(1, 6)])
    with pytest.raises(BackendUnavailable):
        await rig.bus.check()
    # The stalled producer gives each record up (its delivery report is in) before the broker
    # comes back, so it never sends them again; records already in the broker's socket may
    # still land when it resumes.
    await eventually(lambda: len(stalled) == 0, timeout_s=30, what=lambda: f"{len(stalled)} still in flight")
    rig.broker.resume()

    async def retried() -> bool:  # the client's retry of the same ids
        try:
            await rig.bus.publish([_sig("dee", n) for n in range(1, 6)])
            return True
        except BackendUnavailable:
            return False

    await eventually(retried, timeout_s=20, interval_s=0.2)
    # A signal published after the retry, on the same partition (same user): once it is applied,
    # so is every record before it, late landings of the stalled attempt included.
    await rig.bus.publish([_sig("dee", 99, "view")])
    assert await rig.bus.settled("dee", timeout_s=20.0)
    assert await _counts(rig, "dee") == {"like": 6, "view": 1}


class _CrashMidBatch:
    """A FeatureStore that applies the first half of one batch, then dies (no commit follows)."""

    def __init__(self, real) -> None:
        self._real = real
        self.crashed = asyncio.Event()

    async def apply(self, signals, items, *, now=None):
        if len(signals) >= 2 and not self.crashed.is_set():
            await self._real.apply(signals[: len(signals) // 2], items, now=now)
            self.crashed.set()
            raise asyncio.CancelledError  # the process is gone before it could commit
        return await self._real.apply(signals, items, now=now)


async def test_worker_dying_mid_batch_resumes_with_no_double_count(rig: Rig) -> None:
    from overdrive.store.redis_watermarks import RedisWatermarks
    from overdrive.stream.kafka_consumer import KafkaSignalWorker

    await rig.stop_worker()  # the fixture's worker has left the group: it applies none of what follows
    watermarks = rig.bus._watermarks  # noqa: SLF001 - the same marks the bus reads
    assert isinstance(watermarks, RedisWatermarks)
    sent = [_sig(f"m{n % 4}", n, ["view", "like", "share"][n % 3]) for n in range(200)]
    await rig.bus.publish(sent)

    def worker(features) -> KafkaSignalWorker:
        applier = SignalApplier(features=features, catalog=rig.catalog, monitor=PerformanceMonitor())
        return KafkaSignalWorker(bootstrap_servers=rig.broker.bootstrap, topic=TOPIC, group="crash", applier=applier,
                                 watermarks=watermarks, session_timeout_ms=6000)

    crashing = _CrashMidBatch(rig.features)
    first = worker(crashing)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(first.run(asyncio.Event()), 30)
    await first.close()
    assert crashing.crashed.is_set()

    second, stop = worker(rig.features), asyncio.Event()
    task = asyncio.create_task(second.run(stop))
    try:
        expected: dict[str, Counter] = {}
        for s in sent:
            expected.setdefault(s.user_id, Counter())[s.signal_type] += 1

        async def counts() -> dict[str, Counter]:
            return {u: Counter(await _counts(rig, u)) for u in expected}

        async def all_applied() -> bool:
            return await counts() == expected

        await eventually(all_applied, timeout_s=40, interval_s=0.1, what=counts)
        assert second.stats["skipped_duplicates"] > 0  # the half-applied batch came again, and was skipped
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await second.close()


async def test_tail_hands_every_new_signal_to_the_learners_once(rig: Rig) -> None:
    """Each replica's tail: signals produced after it started reach its learners, repeats do not."""
    from overdrive.stream.kafka_tail import KafkaSignalTail

    seen: list[Signal] = []
    failing_calls: list[int] = []

    def failing(signals: list[Signal]) -> None:
        failing_calls.append(len(signals))
        raise RuntimeError("a buggy learner")

    learners = Learners()
    learners.subscribe(failing)
    learners.subscribe(seen.extend)
    tail = KafkaSignalTail(bootstrap_servers=rig.broker.bootstrap, topic=TOPIC, learners=learners)
    await asyncio.to_thread(tail.start)
    try:
        await rig.bus.publish([_sig("eve", n) for n in range(5)] + [_sig("fay", n) for n in range(5)])
        await rig.bus.publish([_sig("eve", n) for n in range(5)])  # a client retry: same ids
        await rig.bus.publish([_sig("eve", 99, "share")])  # last, on eve's partition after the retry
        expected = {f"eve-{n}" for n in range(5)} | {f"fay-{n}" for n in range(5)} | {"eve-99"}
        # The tail reads a partition in order: once it has passed on eve-99, the retried records
        # before it have been read too, so whatever it was going to hand on from them it has.
        await eventually(lambda: expected <= {s.signal_id for s in seen}, timeout_s=20,
                         what=lambda: sorted(s.signal_id for s in seen))
        # (Records produced before the tail started are not asserted on: Tansu reports a
        # partition's high watermark as of its last record batch, so a few may show up.)
        assert sorted(s.signal_id for s in seen) == sorted(expected)  # each once: the repeats were dropped
        assert sum(failing_calls) == 11 and learners.failures == len(failing_calls)
    finally:
        await asyncio.to_thread(tail.close)


async def test_history_reads_every_retained_signal_once(rig: Rig) -> None:
    """What Kafka-mode replicas retrain on: the whole topic, each signal id once."""
    from overdrive.stream.kafka_history import KafkaSignalHistory

    signals = [_sig(user, n) for user in ("gus", "hal", "ivy") for n in range(20)]
    await rig.bus.publish(signals[:40])
    await rig.bus.publish(signals[30:])  # a client retry of ten of them: those records repeat
    history = KafkaSignalHistory(bootstrap_servers=rig.broker.bootstrap, topic=TOPIC, partitions=3)
    read = await asyncio.to_thread(lambda: [s for batch in history.scan(batch_size=7) for s in batch])
    assert sorted(s.signal_id for s in read) == sorted(s.signal_id for s in signals)
    assert {s.signal_id: s for s in read} == {s.signal_id: s for s in signals}  # decoded whole
    assert await history.count() > 0
