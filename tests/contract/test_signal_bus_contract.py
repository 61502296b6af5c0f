"""SignalBus contract: the in-process bus and the Kafka bus (real Tansu broker + Redis) alike.

What every bus promises: once `publish` returns, `settled(user)` becomes true only after the
live state reflects that user's signals; redelivered signal ids change nothing; a user with
nothing in flight is settled at once; concurrent publishers are all counted exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from overdrive.domain.types import Item, Signal
from overdrive.store.feature_config import FeatureConfig
from tests import real_servers

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@dataclass
class BusRig:
    bus: object
    features: object
    catalog: object


@asynccontextmanager
async def in_process_bus(tmp: Path) -> AsyncIterator[BusRig]:
    from overdrive.observability.performance import PerformanceMonitor
    from overdrive.store.memory_feature_store import MemoryFeatureStore
    from overdrive.store.sqlite_catalog import SCHEMA as ITEMS, SqliteItemCatalog
    from overdrive.store.sqlite_db import SqliteDatabase
    from overdrive.store.sqlite_signal_log import SCHEMA as SIGNALS, SqliteSignalLog
    from overdrive.stream.in_process import in_process_bus

    db = SqliteDatabase(path=tmp / "bus.sqlite3", schema=SIGNALS + ITEMS)
    catalog, features = SqliteItemCatalog(db), MemoryFeatureStore(config=FeatureConfig())
    bus = in_process_bus(signal_log=SqliteSignalLog(db), features=features, catalog=catalog, monitor=PerformanceMonitor(),
                         workers=4)
    await bus.start()
    try:
        yield BusRig(bus, features, catalog)
    finally:
        await bus.close()
        await db.close()


@asynccontextmanager
async def kafka_bus(tmp: Path) -> AsyncIterator[BusRig]:
    if (why := real_servers.tansu_missing() or real_servers.shared_redis_missing()) is not None:
        real_servers.unavailable(why)
    from overdrive.store.redis_catalog import RedisItemCatalog
    from overdrive.store.redis_conn import RedisConnection
    from overdrive.store.redis_feature_store import RedisFeatureStore
    from overdrive.store.redis_watermarks import RedisWatermarks
    from overdrive.stream.kafka_bus import KafkaSignalBus
    from overdrive.observability.performance import PerformanceMonitor
    from overdrive.stream.applier import SignalApplier
    from overdrive.stream.kafka_consumer import KafkaSignalWorker

    broker = real_servers.Tansu(log_dir=tmp).start()
    broker.create_topic("contract", partitions=3)
    prefix = real_servers.unique_prefix("buscontract")
    redis = RedisConnection(real_servers.SHARED_REDIS_URL)
    features = RedisFeatureStore(connection=redis, config=FeatureConfig(), prefix=prefix)
    catalog = RedisItemCatalog(connection=redis, prefix=prefix)
    watermarks = RedisWatermarks(connection=redis, topic="contract", prefix=prefix)
    bus = KafkaSignalBus(bootstrap_servers=broker.bootstrap, topic="contract", watermarks=watermarks)
    applier = SignalApplier(features=features, catalog=catalog, monitor=PerformanceMonitor())
    worker = KafkaSignalWorker(bootstrap_servers=broker.bootstrap, topic="contract", group="g", applier=applier,
                               watermarks=watermarks, session_timeout_ms=6000)
    stop = asyncio.Event()
    await bus.start()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield BusRig(bus, features, catalog)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await worker.close()
        await bus.close()
        await redis.close()
        broker.stop()
        real_servers.delete_prefix(real_servers.SHARED_REDIS_URL, prefix)


BusFactory = Callable[[Path], AbstractAsyncContextManager[BusRig]]


@pytest.fixture(params=[in_process_bus, kafka_bus], ids=lambda f: f.__name__)
async def rig(anyio_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BusRig]:
    async with request.param(tmp_path) as rig:
        await rig.catalog.put([Item(id="jazz", tags=("jazz",)), Item(id="golf", tags=("golf",))])
        yield rig


def _sig(user: str, n: int, item: str = "jazz", stype: str = "like") -> Signal:
    return Signal(user_id=user, signal_type=stype, content_id=item, timestamp=time.time(), signal_id=f"{user}-{n}")


async def _counts(rig: BusRig, user: str) -> dict[str, int]:
    return (await rig.features.user_activity(user, now=time.time())).signal_counts


async def test_settled_means_the_live_state_shows_the_signals(rig: BusRig) -> None:
    await rig.bus.publish([_sig("ann", 1), _sig("ann", 2, "golf", "share")])
    assert await rig.bus.settled("ann", timeout_s=20.0)  # the Kafka worker joins its group first
    assert await _counts(rig, "ann") == {"like": 1, "share": 1}
    interests = await rig.features.user_interests("ann", now=time.time())
    assert interests["tag:golf"] > interests["tag:jazz"] > 0


async def test_redelivered_ids_change_nothing(rig: BusRig) -> None:
    await rig.bus.publish([_sig("bo", n) for n in range(5)])
    assert await rig.bus.settled("bo", timeout_s=20.0)
    await rig.bus.publish([_sig("bo", n) for n in range(5)] + [_sig("bo", 5, stype="view")])
    assert await rig.bus.settled("bo", timeout_s=10.0)
    assert await _counts(rig, "bo") == {"like": 5, "view": 1}


async def test_nothing_in_flight_is_settled_at_once(rig: BusRig) -> None:
    assert await rig.bus.settled("nobody", timeout_s=0.05)


async def test_concurrent_publishers_are_each_counted_once(rig: BusRig) -> None:
    users = [f"u{n}" for n in range(8)]
    await asyncio.gather(*(rig.bus.publish([_sig(u, n, stype="view")]) for u in users for n in range(6)))
    for u in users:
        assert await rig.bus.settled(u, timeout_s=20.0)
    got = Counter({u: sum((await _counts(rig, u)).values()) for u in users})
    assert got == Counter({u: 6 for u in users})
