"""Backends under contract: one factory per implementation of each storage Protocol.

Every contract test receives its store through a fixture parametrised over the factory lists
below, so a new backend (Redis, …) joins every suite by adding one factory to one list.

A factory is an async context manager called with a *location* — a per-test `Path` under
`tmp_path`. File backends open their files there; a networked backend would derive a unique key
prefix from it. Opening the same location again must see the same data (that is how the suites
test durability across close/reopen).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from overdrive.config import DEFAULT_SIGNAL_WEIGHTS
from overdrive.store.feature_config import FeatureConfig
from overdrive.store.protocols import FeatureStore, ItemCatalog, SignalLog
from tests import real_servers

# --------------------------------------------------------------------------------------------
# SignalLog factories
# --------------------------------------------------------------------------------------------


@asynccontextmanager
async def sqlite_signal_log(location: Path) -> AsyncIterator[SignalLog]:
    from overdrive.store.sqlite_catalog import SCHEMA as ITEMS_SCHEMA
    from overdrive.store.sqlite_db import SqliteDatabase
    from overdrive.store.sqlite_signal_log import SCHEMA as SIGNALS_SCHEMA, SqliteSignalLog

    db = SqliteDatabase(path=location / "overdrive.sqlite3", schema=SIGNALS_SCHEMA + ITEMS_SCHEMA)
    log = SqliteSignalLog(db)
    try:
        yield log
    finally:
        await log.close()


SignalLogFactory = Callable[[Path], AbstractAsyncContextManager[SignalLog]]
SIGNAL_LOG_FACTORIES: list[SignalLogFactory] = [sqlite_signal_log]

# --------------------------------------------------------------------------------------------
# ItemCatalog factories
# --------------------------------------------------------------------------------------------


@asynccontextmanager
async def sqlite_item_catalog(location: Path) -> AsyncIterator[ItemCatalog]:
    from overdrive.store.sqlite_catalog import SCHEMA as ITEMS_SCHEMA, SqliteItemCatalog
    from overdrive.store.sqlite_db import SqliteDatabase
    from overdrive.store.sqlite_signal_log import SCHEMA as SIGNALS_SCHEMA

    db = SqliteDatabase(path=location / "overdrive.sqlite3", schema=SIGNALS_SCHEMA + ITEMS_SCHEMA)
    catalog = SqliteItemCatalog(db)
    try:
        yield catalog
    finally:
        await catalog.close()


# Redis backends: the key prefix is derived from the location, so reopening it sees the same
# data; every prefix used is deleted at the end of the session (the shared Redis is never
# flushed). The Cluster is three private redis-servers started on first use.
_REDIS_PREFIXES: set[tuple[str, str]] = set()
_SESSION = uuid.uuid4().hex[:8]  # pytest reuses tmp paths across runs; prefixes must not be


def _redis_url(cluster: bool) -> str:
    missing = real_servers.redis_server_missing() if cluster else real_servers.shared_redis_missing()
    if missing:
        real_servers.unavailable(missing)
    return real_servers.shared_cluster().url if cluster else real_servers.SHARED_REDIS_URL


@asynccontextmanager
async def _redis_connection(location: Path, cluster: bool) -> AsyncIterator[tuple[object, str]]:
    from overdrive.store.redis_conn import RedisConnection

    url = _redis_url(cluster)
    prefix = f"odtest:contract:{_SESSION}:{hashlib.sha1(str(location).encode()).hexdigest()[:12]}:"
    _REDIS_PREFIXES.add((url, prefix))
    connection = RedisConnection(url)
    try:
        yield connection, prefix
    finally:
        await connection.close()


@asynccontextmanager
async def redis_item_catalog(location: Path) -> AsyncIterator[ItemCatalog]:
    from overdrive.store.redis_catalog import RedisItemCatalog

    async with _redis_connection(location, cluster=False) as (connection, prefix):
        catalog = RedisItemCatalog(connection=connection, prefix=prefix)
        yield catalog
        await catalog.close()


@asynccontextmanager
async def redis_cluster_item_catalog(location: Path) -> AsyncIterator[ItemCatalog]:
    from overdrive.store.redis_catalog import RedisItemCatalog

    async with _redis_connection(location, cluster=True) as (connection, prefix):
        catalog = RedisItemCatalog(connection=connection, prefix=prefix)
        yield catalog
        await catalog.close()


@asynccontextmanager
async def cached_sqlite_item_catalog(location: Path) -> AsyncIterator[ItemCatalog]:
    """As the embedded service wires it: an in-process cache in front of SQLite."""
    from overdrive.store.cached_catalog import CachedItemCatalog

    async with sqlite_item_catalog(location) as inner:
        yield CachedItemCatalog(inner, capacity=3)


@asynccontextmanager
async def cached_redis_item_catalog(location: Path) -> AsyncIterator[ItemCatalog]:
    """As scaled replicas wire it: a short-lived cache in front of Redis."""
    from overdrive.store.cached_catalog import CachedItemCatalog

    async with redis_item_catalog(location) as inner:
        yield CachedItemCatalog(inner, capacity=3, ttl_s=5.0)


ItemCatalogFactory = Callable[[Path], AbstractAsyncContextManager[ItemCatalog]]
ITEM_CATALOG_FACTORIES: list[ItemCatalogFactory] = [sqlite_item_catalog, redis_item_catalog, redis_cluster_item_catalog,
                                                    cached_sqlite_item_catalog, cached_redis_item_catalog]

# --------------------------------------------------------------------------------------------
# FeatureStore factories
# --------------------------------------------------------------------------------------------


@asynccontextmanager
async def memory_feature_store(location: Path, config: FeatureConfig) -> AsyncIterator[FeatureStore]:
    from overdrive.store.memory_feature_store import MemoryFeatureStore

    yield MemoryFeatureStore(config=config)


@asynccontextmanager
async def redis_feature_store(location: Path, config: FeatureConfig) -> AsyncIterator[FeatureStore]:
    from overdrive.store.redis_feature_store import RedisFeatureStore

    async with _redis_connection(location, cluster=False) as (connection, prefix):
        yield RedisFeatureStore(connection=connection, config=config, prefix=prefix)


@asynccontextmanager
async def redis_cluster_feature_store(location: Path, config: FeatureConfig) -> AsyncIterator[FeatureStore]:
    from overdrive.store.redis_feature_store import RedisFeatureStore

    async with _redis_connection(location, cluster=True) as (connection, prefix):
        yield RedisFeatureStore(connection=connection, config=config, prefix=prefix)


FeatureStoreFactory = Callable[[Path, FeatureConfig], AbstractAsyncContextManager[FeatureStore]]
FEATURE_STORE_FACTORIES: list[FeatureStoreFactory] = [memory_feature_store, redis_feature_store, redis_cluster_feature_store]

# Half-lives the feature-store contract is written against (distinct, so a backend that mixes
# them up fails).
ENGAGEMENT_HALF_LIFE_S = 3600.0
INTEREST_HALF_LIFE_S = 7 * 86400.0
SHORT_TERM_HALF_LIFE_S = 600.0
SESSION_GAP_S = 1800.0
FEATURE_CONFIG = FeatureConfig(
    signal_weights=dict(DEFAULT_SIGNAL_WEIGHTS),
    engagement_half_life_s=ENGAGEMENT_HALF_LIFE_S,
    interest_half_life_s=INTEREST_HALF_LIFE_S,
    short_term_half_life_s=SHORT_TERM_HALF_LIFE_S,
    session_gap_s=SESSION_GAP_S,
    recent_per_user=5,
    excluding_signal_types=frozenset({"view", "hide", "report"}),
)


def _factory_id(factory: Callable) -> str:
    return factory.__name__


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _redis_cleanup() -> Iterator[None]:
    """Delete the keys the Redis factories wrote, then stop the test Cluster if one was started."""
    yield
    for url, prefix in sorted(_REDIS_PREFIXES):
        try:
            real_servers.delete_prefix(url, prefix)
        except Exception:  # noqa: BLE001 - cleanup must not fail the run
            pass
    real_servers.stop_shared_cluster()


@pytest.fixture
def store_location(tmp_path: Path) -> Path:
    location = tmp_path / "store"
    location.mkdir()
    return location


@pytest.fixture(params=SIGNAL_LOG_FACTORIES, ids=_factory_id)
def signal_log_factory(request: pytest.FixtureRequest) -> SignalLogFactory:
    return request.param


@pytest.fixture
async def signal_log(
    anyio_backend: str, signal_log_factory: SignalLogFactory, store_location: Path
) -> AsyncIterator[SignalLog]:
    async with signal_log_factory(store_location) as log:
        yield log


@pytest.fixture(params=ITEM_CATALOG_FACTORIES, ids=_factory_id)
def item_catalog_factory(request: pytest.FixtureRequest) -> ItemCatalogFactory:
    return request.param


@pytest.fixture
async def item_catalog(
    anyio_backend: str, item_catalog_factory: ItemCatalogFactory, store_location: Path
) -> AsyncIterator[ItemCatalog]:
    async with item_catalog_factory(store_location) as catalog:
        yield catalog


@pytest.fixture(params=FEATURE_STORE_FACTORIES, ids=_factory_id)
def feature_store_factory(request: pytest.FixtureRequest) -> FeatureStoreFactory:
    return request.param


@pytest.fixture
async def feature_store(
    anyio_backend: str, feature_store_factory: FeatureStoreFactory, store_location: Path
) -> AsyncIterator[FeatureStore]:
    async with feature_store_factory(store_location, FEATURE_CONFIG) as store:
        yield store


@pytest.fixture
def feature_config() -> FeatureConfig:
    """The configuration `feature_store` was opened with (weights and half-lives to check against)."""
    return FEATURE_CONFIG
