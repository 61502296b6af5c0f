"""create_app: the FastAPI application around a set of services."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from overdrive import __version__
from overdrive.observability.performance import PerformanceMonitor
from overdrive.api import openapi
from overdrive.api.errors import install_error_handlers
from overdrive.api.admission import Admission, LoadShedder
from overdrive.api.middleware import RequestGuard
from overdrive.api.routes import analytics, audit, dashboard, experiments, health, items, models, privacy, ranking, signals
from overdrive.api.security import AuthGuard
from overdrive.config import Settings
from overdrive.services.container import Services


def create_app(services: Services) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        # The live state rebuilt at start-up is millions of long-lived objects: keep them out of
        # the cyclic collector's scans, which otherwise stall requests.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)  # and collect young objects in larger, rarer sweeps
        try:
            yield
        finally:
            await services.close()

    app = FastAPI(
        title="Overdrive",
        version=__version__,
        description="Real-time recommendation and ranking service.",
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    openapi.install(app)  # every error status of every operation declared, with its body
    for router in (ranking.router, signals.router, items.router, analytics.router, models.router, experiments.router,
                   privacy.router, audit.router, health.router):
        app.include_router(router)
    dashboard.install(app, pages=services.settings.dashboard)  # the sampler; /dashboard, its static files

    @app.get("/", include_in_schema=False)
    async def root() -> dict:
        return {"service": "overdrive", "version": __version__, "docs": "/docs"}

    app.add_middleware(AuthGuard, authenticator=services.auth, audit=services.audit)
    add_middleware(app, settings=services.settings, monitor=services.performance)
    return app


def add_middleware(app: FastAPI, *, settings: Settings, monitor: PerformanceMonitor) -> None:
    """The stack every request passes before authentication: request guard (size limit, JSON
    only, request id, timing), then load shedding of rankings and signal writes (its 503s timed
    and tagged like any answer), then CORS for `CLIENT_BASE_URL` alone (which answers preflights).

    The admission counts are `app.state.admission`: `overdrive.app.serve` hands them to the HTTP
    protocol, which counts a request as soon as it is parsed.

    Also used by the ranking benchmark's framework reference endpoint."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[settings.client_base_url],
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
        expose_headers=["X-Request-ID", "Retry-After"],
    )
    app.state.admission = Admission({
        ("POST", "/rank/for-you/enhanced"): ("rankings", settings.max_inflight_rankings),
        ("POST", "/signals/process"): ("signal writes", settings.max_inflight_signal_writes),
        ("POST", "/signals/batch"): ("signal writes", settings.max_inflight_signal_writes),
    }, retry_after_s=settings.shed_retry_after_seconds)
    app.add_middleware(LoadShedder, admission=app.state.admission)
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes, monitor=monitor)
