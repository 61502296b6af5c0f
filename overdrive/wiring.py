"""The composition root: the one place that turns Settings into concrete stores and services."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from overdrive.analytics.insights import RankingJournal
from overdrive.analytics.performance import PerformanceMonitor
from overdrive.analytics.real_time_signals import RealTimeSignalProcessor
from overdrive.analytics.user_analytics import UserAnalytics
from overdrive.config import Settings, SettingsError
from overdrive.services.catalog_service import CatalogService
from overdrive.services.enhanced_ranking_service import EnhancedOverdriveRankingService, strategies_from_weights
from overdrive.services.scorers import EngagementScorer, FreshnessScorer, InterestScorer
from overdrive.services.signal_service import SignalService
from overdrive.store.feature_config import FeatureConfig
from overdrive.store.protocols import FeatureStore, ItemCatalog, SignalLog
from overdrive.stream.protocols import SignalBus

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Services:
    """Everything the API needs, built from settings; `start` before serving, `close` after."""

    settings: Settings
    signal_log: SignalLog
    item_catalog: ItemCatalog
    features: FeatureStore
    bus: SignalBus
    signals: SignalService
    catalog: CatalogService
    ranker: EnhancedOverdriveRankingService
    analytics: UserAnalytics
    performance: PerformanceMonitor
    ready: bool = False

    async def start(self) -> None:
        await self.bus.start()
        self.ready = True

    async def readiness(self) -> dict[str, dict]:
        checks: dict[str, dict] = {}
        try:
            await self.signal_log.ping()
            checks["store"] = {"ok": True, "backend": "sqlite", "path": str(self.settings.data_dir)}
        except Exception as exc:  # any failure here is the dependency's, reported not raised
            checks["store"] = {"ok": False, "backend": "sqlite", "error": str(exc)}
        checks["models"] = {
            "ok": self.ready,
            "scorers": ["real_time", "user_interests", "freshness"],
            "state": "ready" if self.ready else "replaying signal log",
        }
        return checks

    async def close(self) -> None:
        await self.bus.close()
        await self.signal_log.close()


def feature_config(settings: Settings) -> FeatureConfig:
    return FeatureConfig(
        signal_weights=settings.signal_weights,
        engagement_half_life_s=settings.engagement_half_life_hours * 3600.0,
        interest_half_life_s=settings.interest_half_life_days * 86400.0,
        short_term_half_life_s=settings.short_term_half_life_minutes * 60.0,
        session_gap_s=settings.session_gap_minutes * 60.0,
        recent_per_user=settings.recent_signals_per_user,
    )


def build_services(settings: Settings) -> Services:
    if settings.redis_url or settings.kafka_bootstrap_servers:
        raise SettingsError(
            "invalid setting REDIS_URL/KAFKA_BOOTSTRAP_SERVERS: the Redis and Kafka backends are not "
            "part of this build yet; unset them to run on the embedded store"
        )
    from overdrive.store.memory_features import MemoryFeatureStore
    from overdrive.store.sqlite_catalog import SCHEMA as ITEMS_SCHEMA, SqliteItemCatalog
    from overdrive.store.sqlite_db import SqliteDatabase
    from overdrive.store.sqlite_signal_log import SCHEMA as SIGNALS_SCHEMA, SqliteSignalLog
    from overdrive.stream.in_process import InProcessSignalBus

    monitor = PerformanceMonitor()
    db = SqliteDatabase(path=settings.data_dir / "overdrive.sqlite3", schema=SIGNALS_SCHEMA + ITEMS_SCHEMA)
    signal_log, item_catalog = SqliteSignalLog(db), SqliteItemCatalog(db)
    features = MemoryFeatureStore(config=feature_config(settings))
    processor = RealTimeSignalProcessor(
        features=features,
        catalog=item_catalog,
        buffer_size=settings.signal_buffer_size,
        workers=settings.max_workers,
        monitor=monitor,
    )
    bus = InProcessSignalBus(signal_log=signal_log, processor=processor, features=features, catalog=item_catalog)
    journal = RankingJournal()
    ranker = EnhancedOverdriveRankingService(
        scorers=[
            EngagementScorer(features),
            InterestScorer(features),
            FreshnessScorer(half_life_s=settings.freshness_half_life_hours * 3600.0),
        ],
        strategies=strategies_from_weights(settings.ranking_weights),
        catalog=item_catalog,
        features=features,
        bus=bus,
        catalog_candidates=settings.catalog_candidates,
        observers=[journal],
    )
    return Services(
        settings=settings,
        signal_log=signal_log,
        item_catalog=item_catalog,
        features=features,
        bus=bus,
        signals=SignalService(bus=bus),
        catalog=CatalogService(catalog=item_catalog, features=features),
        ranker=ranker,
        analytics=UserAnalytics(features=features, bus=bus, journal=journal, session_gap_s=settings.session_gap_minutes * 60.0),
        performance=monitor,
    )
