"""The services the API serves from, and the lifecycle of what stands behind them.

`overdrive.wiring` (the composition root) builds one `Services` from the settings; the API gets
it and nothing else, so it never sees a concrete store, bus or model module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from overdrive.config import Settings
from overdrive.observability.performance import PerformanceMonitor
from overdrive.security.audit import AuditTrail
from overdrive.security.auth import Authenticator
from overdrive.security.rate_limit import RateLimiter
from overdrive.services.blend_learner import BlendLearner
from overdrive.services.catalog_service import CatalogService
from overdrive.services.collaborative_service import CollaborativeModelService
from overdrive.services.content_service import ContentService
from overdrive.services.experiments import ExperimentService
from overdrive.services.item_analytics import ItemAnalytics
from overdrive.services.privacy import PrivacyService
from overdrive.services.ranking import EnhancedOverdriveRankingService
from overdrive.services.signal_service import SignalService
from overdrive.services.user_analytics import UserAnalytics

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[dict]]  # answers details, or raises naming what is wrong
Step = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Lifecycle:
    """What to start before serving and stop after, in order, and how to tell each dependency is up."""

    starts: list[Step] = field(default_factory=list)
    stops: list[Step] = field(default_factory=list)
    checks: dict[str, HealthCheck] = field(default_factory=dict)
    started: bool = False
    stop_timeout_s: float = 30.0  # a stop step that takes longer is logged by name and left behind

    async def start(self) -> None:
        for step in self.starts:
            await step()
        self.started = True

    async def stop(self) -> None:
        """Every stop step in order; one that hangs is cancelled after `stop_timeout_s` and named in
        the log, so the steps after it (closing the stores) still run and shutdown ends."""
        for step in self.stops:
            try:
                await asyncio.wait_for(step(), self.stop_timeout_s)
            except TimeoutError:
                log.error("shutdown step %s did not finish within %.0f s; going on without it",
                          getattr(step, "__qualname__", step), self.stop_timeout_s)

    async def readiness(self) -> dict[str, dict]:
        checks: dict[str, dict] = {}
        for name, check in self.checks.items():
            try:
                checks[name] = {"ok": True, **await check()}
            except Exception as exc:  # any failure here is the dependency's, reported not raised
                checks[name] = {"ok": False, "error": str(exc) or type(exc).__name__}
        return checks


@dataclass(slots=True)
class Services:
    settings: Settings
    signals: SignalService
    catalog: CatalogService
    ranker: EnhancedOverdriveRankingService
    analytics: UserAnalytics
    item_analytics: ItemAnalytics
    collaborative: CollaborativeModelService
    blend: BlendLearner
    content: ContentService | None
    performance: PerformanceMonitor
    auth: Authenticator
    limiter: RateLimiter
    audit: AuditTrail
    privacy: PrivacyService
    experiments: ExperimentService
    lifecycle: Lifecycle

    async def start(self) -> None:
        await self.lifecycle.start()

    async def close(self) -> None:
        await self.lifecycle.stop()

    async def readiness(self) -> dict[str, dict]:
        return await self.lifecycle.readiness()

    async def store_sizes(self) -> dict[str, int]:
        sizes = {"items": await self.catalog.count()}
        if (logged := await self.signals.logged()) is not None:
            sizes["signals"] = logged
        return sizes
