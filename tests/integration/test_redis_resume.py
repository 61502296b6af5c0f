"""Redis without Kafka: signals acknowledged (in the replica's SQLite log) but not yet applied to
Redis when the process died are applied at the next start — once, however often it restarts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from overdrive.domain.types import Item, Signal
from overdrive.observability.performance import PerformanceMonitor
from overdrive.store.feature_config import FeatureConfig
from overdrive.store.redis_catalog import RedisItemCatalog
from overdrive.store.redis_conn import RedisConnection
from overdrive.store.redis_feature_store import RedisFeatureStore
from overdrive.store.sqlite_db import SqliteDatabase
from overdrive.store.sqlite_signal_log import SCHEMA, SqliteSignalLog
from overdrive.stream.applier import SignalApplier
from overdrive.stream.in_process import InProcessSignalBus, in_process_bus
from overdrive.stream.processor import RealTimeSignalProcessor
from tests import real_servers

pytestmark = pytest.mark.anyio


def _likes(user: str, n: int, start: int = 0) -> list[Signal]:  # no ids: the bus gives them
    return [Signal(user_id=user, signal_type="like", content_id=f"c{k % 3}", timestamp=time.time())
            for k in range(start, start + n)]


async def test_the_unapplied_tail_of_the_log_is_applied_once_at_the_next_start(tmp_path: Path) -> None:
    if why := real_servers.shared_redis_missing():
        real_servers.unavailable(why)
    prefix = real_servers.unique_prefix("resume")
    redis = RedisConnection(real_servers.SHARED_REDIS_URL)
    features = RedisFeatureStore(connection=redis, config=FeatureConfig(), prefix=prefix)
    catalog = RedisItemCatalog(connection=redis, prefix=prefix)

    def open_log() -> SqliteSignalLog:
        return SqliteSignalLog(SqliteDatabase(path=tmp_path / "overdrive.sqlite3", schema=SCHEMA))

    def bus(log: SqliteSignalLog) -> InProcessSignalBus:
        return in_process_bus(signal_log=log, features=features, catalog=catalog, monitor=PerformanceMonitor(),
                              replay=False)

    async def likes(user: str) -> int:
        return (await features.user_activity(user, now=time.time())).signal_counts.get("like", 0)

    try:
        await catalog.put([Item(id=f"c{k}", tags=("cats",)) for k in range(3)])
        # A running replica: signals applied, the mark moved on at shutdown.
        log = open_log()
        running = bus(log)
        await running.start()
        await running.publish(_likes("ann", 40))
        assert await running.settled("ann", timeout_s=10.0)
        await running.close()
        applied = await log.applied_position()
        assert applied == await log.last_position() > 0
        await log.close()

        # A replica that dies after acknowledging: logged, never applied (its workers never ran).
        log = open_log()
        applier = SignalApplier(features=features, catalog=catalog, monitor=PerformanceMonitor())
        dying = InProcessSignalBus(
            signal_log=log, applier=applier, replay=False,
            processor=RealTimeSignalProcessor(applier=applier, buffer_size=10_000, workers=1, monitor=PerformanceMonitor()))
        acked = await dying.publish(_likes("ann", 25, start=40) + _likes("bob", 10))
        assert len(acked) == 35 and all(s.signal_id for s in acked)
        assert await likes("ann") == 40 and await likes("bob") == 0
        await log.close()  # no bus close: the process is gone

        # The next start applies the tail; a second start applies nothing again.
        for _ in range(2):
            log = open_log()
            restarted = bus(log)
            await restarted.start()
            assert await likes("ann") == 65 and await likes("bob") == 10
            assert await log.applied_position() == await log.last_position()
            await restarted.close()
            await log.close()
    finally:
        await redis.close()
        real_servers.delete_prefix(real_servers.SHARED_REDIS_URL, prefix)
