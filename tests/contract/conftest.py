"""Backends under contract: one factory per implementation of each storage Protocol.

Every contract test receives its store through a fixture parametrised over the factory lists
below, so a new backend (Redis, …) joins every suite by adding one factory to one list.

A factory is an async context manager called with a *location* — a per-test `Path` under
`tmp_path`. File backends open their files there; a networked backend would derive a unique key
prefix from it. Opening the same location again must see the same data (that is how the suites
test durability across close/reopen).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from overdrive.config import DEFAULT_SIGNAL_WEIGHTS
from overdrive.store.feature_config import FeatureConfig
from overdrive.store.protocols import FeatureStore, ItemCatalog, SignalLog

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


ItemCatalogFactory = Callable[[Path], AbstractAsyncContextManager[ItemCatalog]]
ITEM_CATALOG_FACTORIES: list[ItemCatalogFactory] = [sqlite_item_catalog]

# --------------------------------------------------------------------------------------------
# FeatureStore factories
# --------------------------------------------------------------------------------------------


@asynccontextmanager
async def memory_feature_store(location: Path, config: FeatureConfig) -> AsyncIterator[FeatureStore]:
    from overdrive.store.memory_features import MemoryFeatureStore

    yield MemoryFeatureStore(config=config)


FeatureStoreFactory = Callable[[Path, FeatureConfig], AbstractAsyncContextManager[FeatureStore]]
FEATURE_STORE_FACTORIES: list[FeatureStoreFactory] = [memory_feature_store]

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
)


def _factory_id(factory: Callable) -> str:
    return factory.__name__


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


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
