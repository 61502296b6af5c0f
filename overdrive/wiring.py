"""The composition root: the one place that turns Settings into concrete stores and services.

Backends are chosen here and nowhere else: the embedded default (SQLite log and catalog,
in-memory live state, in-process bus) or, with `REDIS_URL` / `KAFKA_BOOTSTRAP_SERVERS`, the scaled
ones. Backend modules are imported lazily, so the embedded default needs neither client library.
Only the entry points (`overdrive.app`, `overdrive.worker`, `overdrive.admin`) import this module.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from overdrive.config import Settings, SettingsError
from overdrive.domain.types import Item, Signal
from overdrive.domain.weighting import SignalWeighting
from overdrive.observability.performance import PerformanceMonitor
from overdrive.security.audit import AuditTrail
from overdrive.security.auth import Authenticator
from overdrive.security.keys import KeyFileError, KeyRing
from overdrive.security.rate_limit import Buckets, MemoryBuckets, RateLimiter
from overdrive.security.tokens import JwtVerifier
from overdrive.services.blend_learner import BlendLearner
from overdrive.services.catalog_service import CatalogService
from overdrive.services.collaborative_service import (
    AfterApart,
    CollaborativeModelService,
    FittedEnsemble,
    RetrainElsewhere,
    fit_and_save,
)
from overdrive.services.container import HealthCheck, Lifecycle, Services
from overdrive.services.content_service import ContentService
from overdrive.services.diversity import DiversityPolicy
from overdrive.services.experiments import ExperimentService
from overdrive.services.history_blend import HistoryBlend, ReplicaBuilder
from overdrive.services.insights import RankingJournal
from overdrive.services.item_analytics import ItemAnalytics
from overdrive.services.privacy import PrivacyService
from overdrive.services.ranking import EnhancedOverdriveRankingService, RankingObserver, strategies_from_weights
from overdrive.services.request_context import RequestContexts
from overdrive.services.retrain_apart import Fitted
from overdrive.services.scorers import (
    CollaborativeModel,
    CollaborativeScorer,
    ContentScorer,
    ContextScorer,
    EngagementScorer,
    FeatureColumns,
    FreshnessScorer,
    InterestScorer,
    TwoTowerScorer,
)
from overdrive.services.signal_service import SignalService
from overdrive.services.two_tower_service import TwoTowerService
from overdrive.services.user_analytics import UserAnalytics
from overdrive.store.cached_catalog import CachedItemCatalog
from overdrive.store.data_dir_lock import DataDirLock
from overdrive.store.feature_config import FeatureConfig
from overdrive.store.protocols import AuditLog, ErasureList, ExperimentStore, FeatureStore, ItemCatalog, SignalHistory, SignalLog
from overdrive.stream.applier import Learners, SignalApplier
from overdrive.stream.protocols import SignalBus

if TYPE_CHECKING:
    from overdrive.models.collaborative_filtering import AdvancedCollaborativeFiltering
    from overdrive.store.redis_conn import RedisConnection
    from overdrive.store.redis_replica_lease import RedisReplicaLease
    from overdrive.store.sqlite_db import SqliteDatabase

log = logging.getLogger(__name__)

AfterFit = Callable[[list[Signal], dict[str, Item], "AdvancedCollaborativeFiltering"], None]
Step = Callable[[], Awaitable[None]]
_BLEND_PRIOR_CLICKS = 200.0  # how much feedback the configured weights count as, against a learned blend
_SHARED_ITEM_TTL_S = 5.0  # how stale an item edited through another replica may be served


@dataclass(slots=True)
class Backends:
    """The concrete stores and bus, with a health check per dependency and how to close them."""

    catalog: ItemCatalog
    features: FeatureStore
    bus: SignalBus
    checks: dict[str, HealthCheck]
    history: SignalHistory  # what models retrain on: the signal log, or with Kafka the topic
    signal_log: SignalLog | None  # the durable log, where this deployment keeps one
    audit_log: AuditLog
    erasures: ErasureList
    buckets: Buckets  # rate-limit budgets
    experiments: ExperimentStore
    closers: list[Step]
    starts: list[Step] = field(default_factory=list)  # before the bus
    retrain_apart: RetrainElsewhere | None = None  # where a retrain runs when not on this process's thread


def feature_config(settings: Settings) -> FeatureConfig:
    return FeatureConfig(
        signal_weights=settings.signal_weights,
        engagement_half_life_s=settings.engagement_half_life_hours * 3600.0,
        interest_half_life_s=settings.interest_half_life_days * 86400.0,
        short_term_half_life_s=settings.short_term_half_life_minutes * 60.0,
        session_gap_s=settings.session_gap_minutes * 60.0,
        recent_per_user=settings.recent_signals_per_user,
        excluding_signal_types=settings.excluding_signal_types,
    )


def _in_process_bus(settings: Settings, signal_log: SignalLog, features: FeatureStore, catalog: ItemCatalog,
                    monitor: PerformanceMonitor, learners: Learners, *, replay: bool) -> SignalBus:
    from overdrive.stream.in_process import in_process_bus

    return in_process_bus(signal_log=signal_log, features=features, catalog=catalog, monitor=monitor, learners=learners,
                          buffer_size=settings.signal_buffer_size, workers=settings.max_workers, replay=replay)


def _sqlite_database(settings: Settings) -> SqliteDatabase:
    from overdrive.store.sqlite_audit import SCHEMA as AUDIT_SCHEMA
    from overdrive.store.sqlite_catalog import SCHEMA as ITEMS_SCHEMA
    from overdrive.store.sqlite_db import SqliteDatabase
    from overdrive.store.sqlite_erasures import SCHEMA as ERASURES_SCHEMA
    from overdrive.store.sqlite_experiments import SCHEMA as EXPERIMENTS_SCHEMA
    from overdrive.store.sqlite_signal_log import SCHEMA as SIGNALS_SCHEMA

    return SqliteDatabase(path=settings.data_dir / "overdrive.sqlite3",
                          schema=SIGNALS_SCHEMA + ITEMS_SCHEMA + AUDIT_SCHEMA + ERASURES_SCHEMA + EXPERIMENTS_SCHEMA)


def _embedded_backends(settings: Settings, monitor: PerformanceMonitor, learners: Learners) -> Backends:
    from overdrive.store.memory_feature_store import MemoryFeatureStore
    from overdrive.store.sqlite_audit import SqliteAuditLog
    from overdrive.store.sqlite_catalog import SqliteItemCatalog
    from overdrive.store.sqlite_erasures import SqliteErasureList
    from overdrive.store.sqlite_experiments import SqliteExperimentStore
    from overdrive.store.sqlite_signal_log import SqliteSignalLog

    lock = DataDirLock(settings.data_dir).acquire()
    db = _sqlite_database(settings)
    signal_log = SqliteSignalLog(db)
    catalog = CachedItemCatalog(SqliteItemCatalog(db))  # this process is the catalog's only writer
    features = MemoryFeatureStore(config=feature_config(settings))
    apart = None
    if settings.retrain_in == "child_process":
        from overdrive.services.retrain_apart import ChildProcessRetrain

        apart = ChildProcessRetrain(target=functools.partial(retrain_in_child, settings),
                                    logged=lambda late, position: signal_log.logged_like(late, up_to=position),
                                    preload=_CHILD_RETRAIN_PRELOAD)
    return Backends(
        catalog=catalog,
        features=features,
        bus=_in_process_bus(settings, signal_log, features, catalog, monitor, learners, replay=True),
        checks={"store": _sqlite_check(signal_log, settings)},
        history=signal_log,
        signal_log=signal_log,
        audit_log=SqliteAuditLog(db),
        erasures=SqliteErasureList(db),
        buckets=MemoryBuckets(),
        experiments=SqliteExperimentStore(db),
        closers=[signal_log.close, _released(lock)],
        retrain_apart=apart,
    )


_CHILD_RETRAIN_PRELOAD = ("overdrive.wiring", "overdrive.models.collaborative_filtering",
                          "overdrive.store.sqlite_signal_log", "overdrive.store.sqlite_catalog")


def retrain_in_child(settings: Settings, erased: dict[str, float]) -> Fitted:
    """An embedded retrain's child process (`ChildProcessRetrain`): the log up to its newest
    position and the catalog read from the data folder, the ensemble fitted and published into the
    model folder, and the blend fitted on that history when due — as the trainer does, without a
    content index (`content_based` keeps its configured share there)."""
    from overdrive.models.collaborative_filtering import AdvancedCollaborativeFiltering, ArtifactStore
    from overdrive.observability.logs import configure as configure_logging
    from overdrive.store.sqlite_catalog import SqliteItemCatalog
    from overdrive.store.sqlite_signal_log import SqliteSignalLog

    configure_logging(settings.log_level, settings.log_format)
    db = _sqlite_database(settings)
    try:
        signal_log = SqliteSignalLog(db)
        position = signal_log.position()
        store = ArtifactStore(root=settings.model_cache_dir / "collaborative", loader=AdvancedCollaborativeFiltering.load)
        model, version, signals, items = fit_and_save(_ensemble_factory(settings), store,
                                                      signal_log.scan(up_to=position), SqliteItemCatalog(db).scan())
        blend = _fit_history(_history_blend(settings, content=None))(signals, items, model) if settings.blend_from_history else None
        return Fitted(version=version, position=position,
                      stats={"signals": len(signals), "items": len(items), "fitted_by_process": os.getpid()},
                      after_fit={"blend_from_history": blend})
    finally:
        asyncio.run(db.close())


def _scaled_backends(settings: Settings, monitor: PerformanceMonitor, learners: Learners) -> Backends:
    """Live state and catalog in Redis; signals through Kafka, or without it the local SQLite log.

    With Kafka the API only produces; `python -m overdrive.worker` applies, and each replica reads
    the topic too: its end for the learners, all of it to retrain. Without Kafka each replica
    applies its own signals (read-your-writes holds on the replica that took them).
    """
    if not settings.redis_url:
        raise SettingsError("invalid setting REDIS_URL: required when KAFKA_BOOTSTRAP_SERVERS is set")
    from overdrive.store.redis_catalog import RedisItemCatalog
    from overdrive.store.redis_conn import RedisConnection
    from overdrive.store.redis_feature_store import RedisFeatureStore

    from overdrive.store.redis_audit import RedisAuditLog
    from overdrive.store.redis_erasures import RedisErasureList
    from overdrive.store.redis_experiments import RedisExperimentStore
    from overdrive.store.redis_rate_limit import RedisBuckets

    redis = RedisConnection(settings.redis_url)
    features = RedisFeatureStore(connection=redis, config=feature_config(settings), prefix=settings.redis_prefix)
    catalog = CachedItemCatalog(RedisItemCatalog(connection=redis, prefix=settings.redis_prefix), ttl_s=_SHARED_ITEM_TTL_S)
    erasures = RedisErasureList(connection=redis, prefix=settings.redis_prefix)
    checks: dict[str, HealthCheck] = {"store": redis.ping}
    closers: list[Step] = [catalog.close, redis.close]
    starts: list[Step] = []
    signal_log = None
    if settings.kafka_bootstrap_servers:
        from overdrive.store.redis_watermarks import RedisWatermarks
        from overdrive.stream.kafka_bus import KafkaSignalBus
        from overdrive.stream.kafka_history import KafkaSignalHistory

        bus: SignalBus = KafkaSignalBus(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=settings.kafka_topic,
            partitions=settings.kafka_partitions,
            delivery_timeout_ms=settings.kafka_delivery_timeout_ms,
            watermarks=RedisWatermarks(connection=redis, topic=settings.kafka_topic, prefix=settings.redis_prefix),
            learners=learners,
            erasures=erasures,
            monitor=monitor,
        )
        checks["kafka"] = bus.check
        from overdrive.stream.kafka_lag import KafkaConsumerLag  # the workers' lag, on the dashboard and /metrics

        lag = KafkaConsumerLag(bootstrap_servers=settings.kafka_bootstrap_servers, topic=settings.kafka_topic,
                               group=settings.kafka_consumer_group)
        monitor.gauge("kafka_consumer_lag", lag.read)
        closers.insert(0, lag.close)
        history: SignalHistory = KafkaSignalHistory(bootstrap_servers=settings.kafka_bootstrap_servers,
                                                    topic=settings.kafka_topic, partitions=settings.kafka_partitions)
    else:
        from overdrive.store.sqlite_db import SqliteDatabase
        from overdrive.store.sqlite_signal_log import SCHEMA as SIGNALS_SCHEMA, SqliteSignalLog

        lock = DataDirLock(settings.data_dir).acquire()  # this replica's own signal log
        closers.append(_released(lock))
        if not settings.allow_replicas_without_kafka:
            lease = _replica_lease(redis, settings, lock)
            checks["replica_lease"] = lease.check
            starts.append(lease.start)
            closers.insert(0, lease.release)
        signal_log = SqliteSignalLog(SqliteDatabase(path=settings.data_dir / "overdrive.sqlite3", schema=SIGNALS_SCHEMA))
        bus = _in_process_bus(settings, signal_log, features, catalog, monitor, learners, replay=False)
        checks["signal_log"] = _sqlite_check(signal_log, settings)
        closers.insert(0, signal_log.close)
        history = signal_log
    return Backends(catalog=catalog, features=features, bus=bus, checks=checks, history=history,
                    signal_log=signal_log, audit_log=RedisAuditLog(connection=redis, prefix=settings.redis_prefix),
                    erasures=erasures, buckets=RedisBuckets(connection=redis, prefix=settings.redis_prefix),
                    experiments=RedisExperimentStore(connection=redis, prefix=settings.redis_prefix), closers=closers,
                    starts=starts)


def _replica_lease(redis: RedisConnection, settings: Settings, lock: DataDirLock) -> RedisReplicaLease:
    """This replica's lease on the Redis prefix (Redis without Kafka: one replica); the data
    folder's lock is let go when another replica holds it, as the process then stops."""
    from overdrive.store.redis_replica_lease import RedisReplicaLease

    try:
        return RedisReplicaLease(connection=redis, prefix=settings.redis_prefix, data_dir=settings.data_dir).acquire()
    except BaseException:
        lock.release()
        raise


def _released(lock: DataDirLock) -> Step:
    async def release() -> None:
        lock.release()

    return release


def _sqlite_check(signal_log: SignalLog, settings: Settings) -> HealthCheck:
    async def check() -> dict:
        await signal_log.ping()
        return {"backend": "sqlite", "path": str(settings.data_dir)}

    return check


def build_worker(settings: Settings):  # noqa: ANN201 - the worker type lives behind a lazy import
    """The processor worker of scaled mode (`python -m overdrive.worker`): Kafka in, Redis out."""
    if not settings.kafka_bootstrap_servers or not settings.redis_url:
        raise SettingsError(
            "invalid setting KAFKA_BOOTSTRAP_SERVERS/REDIS_URL: the worker needs both (it consumes "
            "signals from Kafka and writes live state to Redis)"
        )
    from overdrive.store.redis_catalog import RedisItemCatalog
    from overdrive.store.redis_conn import RedisConnection
    from overdrive.store.redis_erasures import RedisErasureList
    from overdrive.store.redis_feature_store import RedisFeatureStore
    from overdrive.store.redis_watermarks import RedisWatermarks
    from overdrive.stream.kafka_consumer import KafkaSignalWorker

    redis = RedisConnection(settings.redis_url)
    applier = SignalApplier(
        features=RedisFeatureStore(connection=redis, config=feature_config(settings), prefix=settings.redis_prefix),
        catalog=RedisItemCatalog(connection=redis, prefix=settings.redis_prefix),
        monitor=PerformanceMonitor(),
    )
    worker = KafkaSignalWorker(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topic=settings.kafka_topic,
        group=settings.kafka_consumer_group,
        partitions=settings.kafka_partitions,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        batch_size=settings.worker_batch_size,
        applier=applier,
        watermarks=RedisWatermarks(connection=redis, topic=settings.kafka_topic, prefix=settings.redis_prefix),
        erasures=RedisErasureList(connection=redis, prefix=settings.redis_prefix),
    )
    return worker, redis.close


def _ensemble_factory(settings: Settings) -> Callable[[], AdvancedCollaborativeFiltering]:
    from overdrive.models.collaborative_filtering import AdvancedCollaborativeFiltering
    from overdrive.models.collaborative_filtering.tuning_memo import TuningMemo

    factor_methods = ("nmf", "als", "bpr", "lightfm")
    params = None if settings.cf_tune else {m: {"n_factors": settings.n_factors} for m in factor_methods}

    def factory() -> AdvancedCollaborativeFiltering:
        return AdvancedCollaborativeFiltering(
            signal_weights=settings.signal_weights, half_life_days=settings.interest_half_life_days,
            methods=settings.cf_method_list, tune=settings.cf_tune, fold_in_every=settings.fold_in_every,
            fold_in_on_demand=settings.folds_in_on_demand,
            params=params, tuning_memo=TuningMemo(settings.model_cache_dir / "collaborative" / "tuning.json"),
            tune_budget_s=settings.cf_tune_budget_seconds,
        )

    return factory


def _collaborative(settings: Settings, *, history: SignalHistory, erasures: ErasureList,
                   catalog: ItemCatalog, after_fit: Sequence[AfterFit] = (),
                   apart: RetrainElsewhere | None = None,
                   after_apart: Sequence[AfterApart] = ()) -> CollaborativeModelService:
    return CollaborativeModelService(
        apart=apart,
        after_apart=after_apart,
        model_dir=settings.model_cache_dir / "collaborative",
        factory=_ensemble_factory(settings),
        after_fit=after_fit,
        history=history,
        erasures=erasures,
        catalog=catalog,
        retrain_interval_s=settings.retrain_interval_minutes * 60.0 or None,
        train_on_start=settings.train_on_start,
        trains=settings.trainer == "here",
        follow_every_s=settings.model_follow_seconds,
    )


def build_trainer(settings: Settings) -> tuple[CollaborativeModelService, Step]:
    """The one trainer of scaled mode (`python -m overdrive.trainer`): the topic and the shared
    catalog in, model versions out into the shared MODEL_CACHE_DIR."""
    if not settings.kafka_bootstrap_servers or not settings.redis_url:
        raise SettingsError(
            "invalid setting KAFKA_BOOTSTRAP_SERVERS/REDIS_URL: the trainer needs both (it trains on the topic, "
            "which holds every replica's signals, and the catalog in Redis); without them the API trains itself")
    from overdrive.store.redis_catalog import RedisItemCatalog
    from overdrive.store.redis_conn import RedisConnection
    from overdrive.store.redis_erasures import RedisErasureList
    from overdrive.stream.kafka_history import KafkaSignalHistory

    redis = RedisConnection(settings.redis_url)
    history = KafkaSignalHistory(bootstrap_servers=settings.kafka_bootstrap_servers, topic=settings.kafka_topic,
                                 partitions=settings.kafka_partitions)
    after_fit = [_fit_history(_history_blend(settings, content=None))] if settings.blend_from_history else []
    service = _collaborative(settings.model_copy(update={"trainer": "here"}), history=history,
                             erasures=RedisErasureList(connection=redis, prefix=settings.redis_prefix),
                             catalog=RedisItemCatalog(connection=redis, prefix=settings.redis_prefix),
                             after_fit=after_fit)

    async def close() -> None:
        await service.close()
        await redis.close()

    return service, close


def _content(settings: Settings, backends: Backends) -> ContentService:
    from overdrive.content.cache import ContentCache
    from overdrive.content.extractor import MultiModalFeatureExtractor
    from overdrive.content.media import MediaLoader
    from overdrive.content.text import SentenceTextEncoder
    from overdrive.index.usearch_index import UsearchIndex

    cache = ContentCache(path=settings.data_dir / "features.sqlite3")
    text = SentenceTextEncoder(model_cache_dir=settings.model_cache_dir, compiled_dir=settings.compiled_models_dir)
    media = MediaLoader(file_roots=settings.media_root_list, allowed_hosts=settings.media_allowed_host_list,
                        allow_private_networks=settings.media_allow_private_networks)
    extractor = MultiModalFeatureExtractor(
        model_cache_dir=settings.model_cache_dir, item_embedding_dim=settings.item_embedding_dim,
        text_encoder=text, cache=cache, media_loader=media,
    )
    return ContentService(
        extractor=extractor,
        cache=cache,
        index=UsearchIndex(dim=settings.item_embedding_dim, path=settings.data_dir / "vector-index", autosave_every=1000),
        journal_path=settings.data_dir / "feature-journal.sqlite3",
        features=backends.features,
        catalog=backends.catalog,
        weighting=SignalWeighting(settings.signal_weights),
        long_half_life_s=settings.interest_half_life_days * 86400.0,
        short_half_life_s=settings.short_term_half_life_minutes * 60.0,
    )


def _ranker(settings: Settings, bus: SignalBus | None, *, content: ContentService | None,
            collaborative: CollaborativeModel, two_tower: TwoTowerService, features: FeatureStore,
            catalog: ItemCatalog, observers: Sequence[RankingObserver] = (),
            diversity: DiversityPolicy = DiversityPolicy(mmr_lambda=1.0, max_per_author=0),
            learned: BlendLearner | None = None, contexts: RequestContexts | None = None,
            ) -> EnhancedOverdriveRankingService:
    """The ranker over the given state: the live one, or one over state rebuilt from history (no
    `bus`: nothing is written there, no ranking waits for its writes)."""
    columns = FeatureColumns()  # item features as columns, shared by the scorers that match profiles
    return EnhancedOverdriveRankingService(
        scorers=[
            *([ContentScorer(content)] if content is not None else []),
            CollaborativeScorer(collaborative),
            EngagementScorer(features),
            InterestScorer(columns),
            FreshnessScorer(half_life_s=settings.freshness_half_life_hours * 3600.0, columns=columns),
            ContextScorer(columns),
            TwoTowerScorer(two_tower),
        ],
        strategies=strategies_from_weights(settings.ranking_weights),
        catalog=catalog,
        features=features,
        bus=bus,
        catalog_candidates=settings.catalog_candidates,
        observers=observers,
        retrievers=[*([content.retrieve] if content is not None else []), collaborative.recommend, two_tower.retrieve],
        diversity=diversity,
        embeddings=content.embeddings if content is not None else None,
        learned=learned,
        contexts=contexts,
        default_strategy=settings.default_strategy if learned is not None else "enhanced",
    )


def _history_replica(settings: Settings, content: ContentService | None) -> ReplicaBuilder:
    """How the blend fitted from history rebuilds, from the signals before its cut, what a ranking
    reads: live features in memory, the served ensemble fitted again on them (its members as
    tuned, no tuning), content profiles from them."""
    from overdrive.store.memory_feature_store import MemoryFeatureStore
    from overdrive.store.snapshot_catalog import SnapshotCatalog

    def replica(before: Sequence[Signal], items: Mapping[str, Item], cut: float,
                served: AdvancedCollaborativeFiltering) -> EnhancedOverdriveRankingService:
        features = MemoryFeatureStore(config=feature_config(settings))
        for start in range(0, len(before), 10_000):
            features.apply_sync(before[start:start + 10_000], items, now=cut)
        fitted = FittedEnsemble(served.refitted(before, items=items))
        return _ranker(settings, None, content=content.reading(features) if content is not None else None,
                       collaborative=fitted, two_tower=TwoTowerService(ensemble=fitted.model), features=features,
                       catalog=SnapshotCatalog(items, at=cut))

    return replica


def _history_blend(settings: Settings, content: ContentService | None) -> HistoryBlend:
    """The blend fitted from history, saved in the (shared) model folder."""
    return HistoryBlend(path=settings.model_cache_dir / "blend" / "history.json",
                        replica=_history_replica(settings, content), weighting=SignalWeighting(settings.signal_weights),
                        prior=settings.ranking_weights)


def _fit_history(history: HistoryBlend) -> AfterFit:
    """The trainer's after-fit step: fit the blend on the history it trained on, when that has grown
    enough; API replicas read the saved fit (`BlendLearner.start(follow_history_s=...)`). Content
    profiles are not rebuilt here (the trainer holds no content index): `content_based` keeps its
    configured share."""

    def fit(signals: list[Signal], items: dict[str, Item], model: AdvancedCollaborativeFiltering) -> dict[str, Any] | None:
        if not history.due(len(signals)):
            return None
        outcome = history.try_fit(signals, items, model)  # a failure: the replicas keep the blend they serve
        log.info("blend from history: %s%s", outcome["state"], f" ({outcome['reason']})" if "reason" in outcome else "")
        return outcome

    return fit


def build_services(settings: Settings) -> Services:
    monitor = PerformanceMonitor(history_path=settings.data_dir / "model-history.jsonl")
    learners = Learners()  # told of every applied signal (with Kafka: every signal of the topic)
    learners.subscribe(monitor.signals.on_applied)  # signals/s by type, the user debugger's recent signals
    scaled = settings.redis_url or settings.kafka_bootstrap_servers
    backends = (_scaled_backends if scaled else _embedded_backends)(settings, monitor, learners)
    content = _content(settings, backends) if settings.content_features else None
    history = _history_blend(settings, content) if settings.blend_from_history else None
    blend = BlendLearner(model_dir=settings.model_cache_dir / "blend", weighting=SignalWeighting(settings.signal_weights),
                         prior=settings.ranking_weights, prior_clicks=_BLEND_PRIOR_CLICKS, history=history)
    collaborative = _collaborative(settings, history=backends.history, erasures=backends.erasures, catalog=backends.catalog,
                                   after_fit=[] if backends.retrain_apart else [blend.learn_from_history],
                                   apart=backends.retrain_apart,
                                   after_apart=[lambda told: blend.history_fitted_apart(told.get("blend_from_history"))])
    learners.subscribe(collaborative.observe)
    learners.subscribe(blend.on_applied)
    two_tower = TwoTowerService(ensemble=collaborative.model)  # the ensemble's two_tower member, if it has one
    journal = RankingJournal()
    ranker = _ranker(
        settings, backends.bus, content=content, collaborative=collaborative, two_tower=two_tower,
        features=backends.features, catalog=backends.catalog, observers=[journal, blend, monitor.rankings],
        diversity=DiversityPolicy(mmr_lambda=settings.diversity_lambda, max_per_author=settings.max_per_author),
        learned=blend, contexts=RequestContexts(backends.features),
    )
    experiments = ExperimentService(store=backends.experiments, ranker=ranker, history=backends.history,
                                    weighting=SignalWeighting(settings.signal_weights), holdout=settings.experiment_holdout)
    lifecycle = _lifecycle(settings, backends, collaborative, blend, content)
    lifecycle.starts.append(experiments.start)
    lifecycle.stops.insert(0, experiments.close)

    async def models_check() -> dict:
        cf = collaborative.model()
        return {
            "ok": lifecycle.started,
            "scorers": [s.name for s in ranker.scorers],
            "state": "ready" if lifecycle.started else "starting",
            "collaborative": {"version": cf.version, "fitted_at": cf.fitted_at} if cf else "not trained yet",
            "two_tower": two_tower.status(),
            "content": content.health() if content is not None else "disabled (OVERDRIVE_CONTENT_FEATURES=false)",
        }

    lifecycle.checks["models"] = models_check
    audit = AuditTrail(backends.audit_log)
    analytics = UserAnalytics(features=backends.features, bus=backends.bus, journal=journal,
                              session_gap_s=settings.session_gap_minutes * 60.0)
    forgetters: dict[str, Callable[[str], object]] = {
        "impressions": blend.forget_user, "rankings_journal": journal.forget_user,
        **({"content_profile": content.forget_user} if content is not None else {}),
        "experiment_exposures": experiments.forget_user,
        "collaborative_model": collaborative.forget_user,
        "observability": monitor.forget_user,  # the dashboard's recent rankings and signals of the user
    }
    return Services(
        settings=settings,
        signals=SignalService(bus=backends.bus, signal_log=backends.history,
                              count_ttl_s=0.0 if backends.signal_log is not None else 10.0),
        catalog=CatalogService(catalog=backends.catalog, features=backends.features, content=content,
                               listeners=[collaborative]),
        ranker=ranker,
        analytics=analytics,
        item_analytics=ItemAnalytics(features=backends.features, catalog=backends.catalog),
        collaborative=collaborative,
        blend=blend,
        content=content,
        performance=monitor,
        auth=_authenticator(settings, audit),
        limiter=RateLimiter(limits=settings.rate_limits, buckets=backends.buckets),
        audit=audit,
        privacy=PrivacyService(
            history=backends.history, signal_log=backends.signal_log, erasures=backends.erasures,
            features=backends.features, catalog=backends.catalog, bus=backends.bus, analytics=analytics, audit=audit,
            forgetters=forgetters, experiments=experiments.user_data,
        ),
        experiments=experiments,
        lifecycle=lifecycle,
    )


def _authenticator(settings: Settings, audit: AuditTrail) -> Authenticator:
    """API keys and/or JWT verification, from the settings; none of either: authentication off
    (configuration allows that only on loopback)."""
    keys = tokens = None
    if settings.api_keys_file is not None:
        def reloaded(change: dict) -> None:  # a key change is an admin action: audit it
            asyncio.get_running_loop().create_task(
                audit.record_quietly(principal="config", action="keys.reload", target="keys", detail=change))

        try:
            keys = KeyRing(settings.api_keys_file, on_reload=reloaded)
        except KeyFileError as exc:
            raise SettingsError(f"invalid setting OVERDRIVE_API_KEYS_FILE: {exc}") from None
    if settings.jwt_secret or settings.jwks_file or settings.jwks_url:
        tokens = JwtVerifier(
            algorithms=settings.jwt_algorithm_list,
            secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
            jwks_file=settings.jwks_file, jwks_url=settings.jwks_url,
            issuer=settings.jwt_issuer, audience=settings.jwt_audience,
        )
    if keys is None and tokens is None:
        log.warning("authentication is off: no credential configured, serving loopback (%s) only", settings.host)
    return Authenticator(keys=keys, tokens=tokens)


def _lifecycle(settings: Settings, backends: Backends, collaborative: CollaborativeModelService,
               blend: BlendLearner, content: ContentService | None) -> Lifecycle:
    """Start: the bus (the embedded one rebuilds live state from the log first), the models, the
    content pipeline. Stop in the reverse order, then close the stores."""

    async def start_blend() -> None:
        blend.start(interval_s=settings.retrain_interval_minutes * 60.0 or None,
                    follow_history_s=settings.model_follow_seconds if settings.trainer == "external" else None)

    starts: list[Step] = [*backends.starts, backends.bus.start, collaborative.start, start_blend]
    stops: list[Step] = [collaborative.close, blend.close, backends.bus.close, *backends.closers]
    if content is not None:
        starts.append(content.start)
        stops.insert(0, content.close)
    return Lifecycle(starts=starts, stops=stops, checks=dict(backends.checks))


def audit_trail(settings: Settings) -> tuple[AuditTrail, Step]:
    """The deployment's audit trail on its own, for the admin commands (they may run beside a
    live service: the embedded database is opened without taking the data folder's lock)."""
    if settings.redis_url:
        from overdrive.store.redis_audit import RedisAuditLog
        from overdrive.store.redis_conn import RedisConnection

        redis = RedisConnection(settings.redis_url)
        return AuditTrail(RedisAuditLog(connection=redis, prefix=settings.redis_prefix)), redis.close
    from overdrive.store.sqlite_audit import SCHEMA as AUDIT_SCHEMA, SqliteAuditLog
    from overdrive.store.sqlite_db import SqliteDatabase

    db = SqliteDatabase(path=settings.data_dir / "overdrive.sqlite3", schema=AUDIT_SCHEMA)
    return AuditTrail(SqliteAuditLog(db)), db.close
