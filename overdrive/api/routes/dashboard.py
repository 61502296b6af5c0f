"""The operators' dashboard: server-rendered pages (Jinja2) with charts drawn by vendored uPlot.

Pages (each also as JSON under `/dashboard/api/…`, which the pages read to refresh):

- `/dashboard` — overview: requests/s, P50/P95/P99 and error rate per endpoint, signals/s by type,
  queue depth, signals not yet applied, the Kafka workers' lag (scaled mode), dependency health;
  it polls for new points every `OVERDRIVE_DASHBOARD_SAMPLE_SECONDS`.
- `/dashboard/models` — the collaborative ensemble's versions and training history (validation NDCG
  per member, fit and training seconds), the learned blend's weights, two-tower loss curves when
  the service has such a model, per-component score distributions, which component decides rankings.
- `/dashboard/catalog` — items, share with content features, coverage of the last hour's
  rankings, exposure concentration (Gini, Lorenz curve), share of cold items served.
- `/dashboard/trending` — the items whose last hour runs fastest against their own day.
- `/dashboard/users/{user_id}` — the user debugger: profile, windows, recent signals, the last
  rankings with each item's per-component scores. Needs `analytics:read` and is audited
  (`user.read`, view `dashboard`), like the analytics routes.
- `/dashboard/experiments` — every experiment with per-arm results and 95 % intervals.

Every page needs `metrics:read`; trending also `analytics:read`, experiments `experiments:read`.
Nothing is fetched from outside the service: scripts, styles and uPlot are served from
`/dashboard/static/`, and the pages' Content-Security-Policy allows nothing else. Client text
reaches the page only escaped: Jinja2 autoescapes, page data is embedded with `tojson`, and the
script writes text with `textContent`.

A sampler started with the app takes one point of the overview's history every sample interval
(`PerformanceMonitor.sample`) and refreshes what `/metrics` reports from the services: readiness,
catalog sizes, the models' training history.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from overdrive import __version__
from overdrive.api.deps import RequestIdDep, ServicesDep, UserIdPath, services_of
from overdrive.api.security import Allowed, AllowedForUser, principal_of
from overdrive.domain.errors import NotFound
from overdrive.observability.rankings import explain, gini
from overdrive.security.audit import user_target
from overdrive.services.container import Services

log = logging.getLogger(__name__)

_HERE = Path(__file__).resolve().parent.parent
TEMPLATES = _HERE / "templates"
STATIC = _HERE / "static"
_READINESS_TIMEOUT_S = 3.0
_RESULTS_TTL_S = 30.0
_EXPERIMENTS_SHOWN = 20
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store", "X-Frame-Options": "DENY"}
PAGES = (("overview", "/dashboard", "Overview"), ("models", "/dashboard/models", "Models"),
         ("catalog", "/dashboard/catalog", "Catalog health"), ("trending", "/dashboard/trending", "Trending"),
         ("users", "/dashboard/users", "User debugger"), ("experiments", "/dashboard/experiments", "Experiments"))

_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True),
                   trim_blocks=True, lstrip_blocks=True)
# `tojson` (page data in a <script type="application/json">) with orjson: NaN becomes null, any
# other type its str; Jinja still escapes <, >, & and ' in the output.
_env.policies["json.dumps_function"] = lambda obj, **_: orjson.dumps(
    obj, default=str, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()


@asynccontextmanager
async def _sampling(app: FastAPI) -> AsyncIterator[None]:
    """Run the sampler while the app serves; stop it, and any results still computing, after."""
    services: Services = app.state.services
    task = asyncio.create_task(_sample_every(services, services.settings.dashboard_sample_seconds))
    try:
        yield
    finally:
        await stop_tasks([task, *app.state.dashboard_results.running.values()])


async def stop_tasks(tasks: list[asyncio.Task]) -> None:
    """Cancel the tasks, again until each is done: on Python 3.11 a cancel that lands just as an
    awaited `wait_for` completes is lost, and a single cancel left shutdown waiting for ever."""
    while pending := [t for t in tasks if not t.done()]:
        for t in pending:
            t.cancel()
        await asyncio.wait(pending, timeout=1.0)
    for t in tasks:
        if not t.cancelled():
            t.exception()  # retrieved: a failure is not reported again as never retrieved


router = APIRouter(prefix="/dashboard", tags=["dashboard"], dependencies=[Allowed("metrics:read")])
_sampler = APIRouter(lifespan=_sampling)  # no routes: the sampler's lifespan, merged into the app's


def install(app: FastAPI, *, pages: bool = True) -> None:
    """The sampler (the overview's history; readiness, catalog and model figures for `/metrics`)
    and, with `pages`, the dashboard's routes and static files."""
    app.state.dashboard_results = _Results()
    app.include_router(_sampler)
    if pages:
        app.include_router(router)
        app.mount("/dashboard/static", StaticFiles(directory=str(STATIC)), name="dashboard-static")


# ------------------------------------------------------------------------------ the sampler


async def refresh(services: Services) -> None:
    """What the pages and `/metrics` read of the services, then one point of history.

    Its own cost is kept in `live["sampler"]`: the CPU time of its work on the event loop's thread
    (the awaited reads — readiness checks, the catalog count — run in the stores' threads and are
    not counted)."""
    monitor = services.performance
    live: dict[str, Any] = {}
    try:
        async with asyncio.timeout(_READINESS_TIMEOUT_S):  # not wait_for: on 3.11 it can swallow a cancel
            live["readiness"] = await services.readiness()
    except TimeoutError:
        live["readiness"] = {"readiness": {"ok": False, "error": f"no answer within {_READINESS_TIMEOUT_S:.0f}s"}}
    with suppress(Exception):
        live["catalog_items"] = await services.catalog.count()
    cpu = time.thread_time()  # no await from here on
    live["content_items"] = 0  # with content features off, no item has any
    if services.content is not None:
        with suppress(Exception):
            live["content_items"] = int(services.content.health().get("indexed_items", 0))
    live["blend_weights"] = services.ranker.strategies.get("learned")
    live["blend_fitted"] = bool(services.blend.status().get("fitted"))
    monitor.live.update(live)
    monitor.models.observe(_models_status(services))
    point = monitor.sample()
    health = monitor.rankings.catalog_health(monitor.live.get("catalog_items"))
    point["catalog"] = {k: health[k] for k in ("coverage_last_hour", "exposure_gini_last_hour", "cold_share_served")}
    spent_ms = (time.thread_time() - cpu) * 1000.0
    sampler = monitor.live.setdefault("sampler", {"ticks": 0, "cpu_ms_total": 0.0})
    sampler["ticks"] += 1
    sampler["cpu_ms_total"] = round(sampler["cpu_ms_total"] + spent_ms, 3)
    sampler["cpu_ms_last"] = round(spent_ms, 3)


async def _sample_every(services: Services, every_s: float) -> None:
    while True:
        try:
            await refresh(services)
        except Exception:  # the sampler must outlive any one bad read
            log.exception("dashboard sampler failed")
        await asyncio.sleep(every_s)


def _models_status(services: Services) -> dict[str, Any]:
    status = {**services.collaborative.status(), "blend": services.blend.status()}
    # A two-tower model served as a member of the collaborative ensemble reports its training there.
    serving = (status.get("collaborative") or {}).get("serving") or {}
    two_tower = (serving.get("members") or {}).get("two_tower")
    if two_tower:
        status["two_tower"] = two_tower
    return status


# ------------------------------------------------------------------------------- page data


def _mode(services: Services) -> str:
    s = services.settings
    if s.kafka_bootstrap_servers:
        return "scaled (Redis + Kafka)"
    return "scaled (Redis)" if s.redis_url else "embedded"


def _endpoints(services: Services, snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """Per endpoint: requests/s and error rate over the last minute, latency percentiles over the
    recent window (`snapshot`: the monitor's endpoints), all-time counts."""
    monitor = services.performance
    cutoff = time.time() - 60.0
    recent = [p for p in monitor.history if p["t"] > cutoff]
    span = (recent[-1]["t"] - recent[0]["t"]) if len(recent) > 1 else 0.0
    rows = []
    for route, e in snapshot.items():
        if route.startswith(("GET /dashboard", "GET /metrics")):
            continue
        served = [p["routes"][route] for p in recent[1:] if route in p["routes"]]
        rps = sum(r["rps"] for r in served) / max(len(recent) - 1, 1) if span else None
        errors = [r["error_rate"] * r["rps"] for r in served]
        rows.append({
            "endpoint": route, "requests": e["count"], "server_errors": e["server_errors"],
            "rps_1m": round(rps, 3) if rps is not None else None,
            "error_rate_1m": round(sum(errors) / sum(r["rps"] for r in served), 6) if served and sum(r["rps"] for r in served) else 0.0,
            "error_rate": round(e["server_errors"] / e["count"], 6) if e["count"] else 0.0,
            **{k: e["latency_ms"][k] for k in ("p50", "p95", "p99")},
        })
    rows.sort(key=lambda r: -r["requests"])
    return rows


def overview(services: Services, since: float = 0.0) -> dict[str, Any]:
    monitor = services.performance
    live = monitor.live
    snapshot = monitor.snapshot()
    return {
        "now": time.time(),
        "interval_s": services.settings.dashboard_sample_seconds,
        "mode": _mode(services),
        "history": monitor.history_since(since),
        "endpoints": _endpoints(services, snapshot["endpoints"]),
        "gauges": snapshot["gauges"],
        "signals_by_type": monitor.signals.by_type(),
        "dependencies": live.get("readiness", {}),
        "catalog_items": live.get("catalog_items"),
        "sampler": live.get("sampler"),
    }


def models(services: Services) -> dict[str, Any]:
    monitor = services.performance
    status = _models_status(services)
    monitor.models.observe(status)
    two_tower = status.get("two_tower")
    return {
        "collaborative": status["collaborative"],
        "blend": status["blend"],
        "learned_weights": services.ranker.strategies.get("learned"),
        "configured_weights": services.ranker.strategies.get("enhanced"),
        "history": monitor.models.records("collaborative"),
        "blend_history": monitor.models.records("blend"),
        "two_tower": two_tower,
        "two_tower_curves": _loss_curves(two_tower) if two_tower else None,
        "score_histograms": monitor.rankings.score_histograms(),
        "decided_share": monitor.rankings.decided_share(),
        "rankings": monitor.rankings.counters()["rankings"],
    }


def _loss_curves(status: dict[str, Any]) -> dict[str, list[float | None]] | None:
    """Per-epoch series of a two-tower model's status: every top-level list of numbers (`loss`,
    `validation_recall`, …), or a `loss_history`/`training.history` given as a list of per-epoch
    dicts or a dict of per-epoch lists."""
    def numbers(v: Any) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, (int, float)) or x is None for x in v)

    history = status.get("loss_history") or (status.get("training") or {}).get("history")
    if isinstance(history, list) and history and all(isinstance(h, dict) for h in history):
        keys = [k for k, v in history[0].items() if isinstance(v, (int, float)) and k != "epoch"]
        return {k: [float(h[k]) if isinstance(h.get(k), (int, float)) else None for h in history] for k in keys} or None
    source = history if isinstance(history, dict) else status
    curves = {k: [None if x is None else float(x) for x in v] for k, v in source.items() if numbers(v)}
    return curves or None


async def catalog(services: Services) -> dict[str, Any]:
    monitor = services.performance
    items = await services.catalog.count()
    content_items = None
    if services.content is not None:
        content_items = int(services.content.health().get("indexed_items", 0))
    health = monitor.rankings.catalog_health(items)
    exposures = sorted(monitor.rankings.exposures().values())
    zeros = max(0, items - len(exposures))
    return {
        "items": items,
        "content_features": services.content is not None,
        "content_items": content_items,
        "content_share": round(content_items / items, 6) if items and content_items is not None else None,
        **health,
        "lorenz": _lorenz(exposures, zeros),
        "history": [{"t": p["t"], **p["catalog"]} for p in monitor.history if "catalog" in p],
        "decided_share": monitor.rankings.decided_share(),
    }


def _lorenz(counts: list[int], zeros: int, points: int = 50) -> dict[str, list[float]]:
    """The Lorenz curve of exposures over the catalog (items sorted by exposures, ascending)."""
    n = len(counts) + zeros
    total = float(sum(counts))
    if not n or not total:
        return {"items": [], "exposures": []}
    cumulative = [0.0] * zeros
    running = 0.0
    for c in counts:
        running += c
        cumulative.append(running)
    xs, ys = [0.0], [0.0]
    for k in range(1, points + 1):
        i = max(1, round(k * n / points))
        xs.append(round(i / n, 6))
        ys.append(round(cumulative[i - 1] / total, 6))
    return {"items": xs, "exposures": ys, "gini": round(gini(counts, zeros=zeros), 6)}


async def trending(services: Services, limit: int = 20) -> dict[str, Any]:
    ranked = await services.item_analytics.trending(limit)
    exposures = services.performance.rankings.exposures()
    rows = []
    for entry in ranked["items"]:
        row: dict[str, Any] = {"id": entry["id"], "velocity": entry["velocity"], "exposures_last_hour": exposures.get(entry["id"], 0)}
        try:
            item = await services.catalog.get(entry["id"])
            row.update(type=item.type, author_id=item.author_id, tags=list(item.tags)[:8], created_at=item.created_at)
        except NotFound:  # an item gone from the catalog still trends on its signals
            row.update(type=None, author_id=None, tags=[], created_at=None)
        rows.append(row)
    return {"as_of": ranked["as_of"], "items": rows}


async def user(services: Services, user_id: str) -> dict[str, Any]:
    monitor = services.performance
    recent = monitor.signals.recent(user_id)
    rankings = explain(monitor.rankings.recent(user_id))
    return {
        "user_id": user_id,
        "profile": await services.analytics.profile(user_id),
        "realtime": await services.analytics.realtime(user_id),
        "recent_signals": [{"timestamp": s.timestamp, "signal_type": s.signal_type, "content_id": s.content_id,
                            "duration": s.duration, "signal_id": s.signal_id} for s in recent],
        "rankings": rankings,
        "experiments": await services.experiments.assignment(user_id),
    }


class _Results:
    """Experiment results for the page, computed off the request: a page shows the latest computed
    (with its time) and, when that is older than `_RESULTS_TTL_S`, starts a new computation in the
    background; a first view waits for it at most `_RESULTS_WAIT_S`, then shows "computing" and
    the page polls. Nothing is computed while nobody looks."""

    def __init__(self) -> None:
        self.done: dict[str, tuple[float, dict[str, Any]]] = {}  # experiment id -> (when, results)
        self.running: dict[str, asyncio.Task] = {}

    async def get(self, services: Services, experiment_id: str) -> tuple[float, dict[str, Any]] | None:
        cached = self.done.get(experiment_id)
        if (cached is None or time.time() - cached[0] > _RESULTS_TTL_S) and experiment_id not in self.running:
            task = asyncio.create_task(self._compute(services, experiment_id))
            self.running[experiment_id] = task
            task.add_done_callback(lambda _: self.running.pop(experiment_id, None))
        if cached is None and experiment_id in self.running:
            with suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.running[experiment_id]), _RESULTS_WAIT_S)
            cached = self.done.get(experiment_id)
        return cached

    async def _compute(self, services: Services, experiment_id: str) -> None:
        try:
            results = await services.experiments.results(experiment_id)
        except Exception as exc:  # one experiment's failure must not take the page down
            results = {"error": f"{type(exc).__name__}: {exc}"}
        self.done[experiment_id] = (time.time(), results)


_RESULTS_WAIT_S = 0.1


async def experiments(services: Services, results: _Results) -> dict[str, Any]:
    listed = await services.experiments.list()
    shown = []
    for experiment in listed[:_EXPERIMENTS_SHOWN]:
        entry: dict[str, Any] = {"experiment": experiment, "results": None, "as_of": None, "pending": False}
        if experiment.get("state") != "draft":
            cached = await results.get(services, experiment["id"])
            if cached is None:
                entry["pending"] = True
            else:
                entry["as_of"], entry["results"] = cached
        shown.append(entry)
    return {"experiments": shown, "total": len(listed)}


# ---------------------------------------------------------------------------------- routes


def _page(request: Request, page: str, title: str, data: dict[str, Any], **extra: Any) -> HTMLResponse:
    services = services_of(request)
    html = _env.get_template(f"{page}.html").render(
        page=page, title=title, data=data, pages=PAGES, version=__version__, mode=_mode(services),
        interval_s=services.settings.dashboard_sample_seconds, **extra)
    return HTMLResponse(html, headers=_HEADERS)


def _json(data: dict[str, Any]) -> JSONResponse:
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


async def _audit_user_read(request: Request, services: Services, request_id: str, user_id: str) -> None:
    """Every read of one user's data leaves an audit record first (no record, no read)."""
    await services.audit.record(principal=principal_of(request).id, action="user.read", target=user_target(user_id),
                                request_id=request_id, detail={"view": "dashboard"})


@router.get("", response_class=HTMLResponse, include_in_schema=False)
async def overview_page(request: Request, services: ServicesDep) -> HTMLResponse:
    return _page(request, "overview", "Overview", overview(services))


@router.get("/api/overview")
async def overview_api(services: ServicesDep, since: Annotated[float, Query(ge=0)] = 0.0) -> JSONResponse:
    """The overview's figures; `since` (a `t` of the history) returns only newer points."""
    return _json(overview(services, since))


@router.get("/models", response_class=HTMLResponse, include_in_schema=False)
async def models_page(request: Request, services: ServicesDep) -> HTMLResponse:
    return _page(request, "models", "Models", models(services))


@router.get("/api/models")
async def models_api(services: ServicesDep) -> JSONResponse:
    return _json(models(services))


@router.get("/catalog", response_class=HTMLResponse, include_in_schema=False)
async def catalog_page(request: Request, services: ServicesDep) -> HTMLResponse:
    return _page(request, "catalog", "Catalog health", await catalog(services))


@router.get("/api/catalog")
async def catalog_api(services: ServicesDep) -> JSONResponse:
    return _json(await catalog(services))


@router.get("/trending", response_class=HTMLResponse, include_in_schema=False,
            dependencies=[Allowed("analytics:read")])
async def trending_page(request: Request, services: ServicesDep) -> HTMLResponse:
    return _page(request, "trending", "Trending", await trending(services))


@router.get("/api/trending", dependencies=[Allowed("analytics:read")])
async def trending_api(services: ServicesDep, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> JSONResponse:
    return _json(await trending(services, limit))


@router.get("/users", response_class=HTMLResponse, include_in_schema=False,
            dependencies=[Allowed("analytics:read")])
async def users_page(request: Request, user_id: Annotated[str | None, Query(max_length=256)] = None) -> Response:
    """The user debugger's form; with `?user_id=` it goes to that user's page."""
    if user_id:
        return RedirectResponse(request.url_for("user_page", user_id=user_id), status_code=303)
    services = services_of(request)
    recent = list(services.performance.rankings.recent_users(20))
    return _page(request, "users", "User debugger", {"recent_users": recent})


@router.get("/users/{user_id}", response_class=HTMLResponse, include_in_schema=False,
            dependencies=[AllowedForUser("analytics:read")])
async def user_page(user_id: UserIdPath, request: Request, services: ServicesDep, request_id: RequestIdDep) -> HTMLResponse:
    await _audit_user_read(request, services, request_id, user_id)
    return _page(request, "user", f"User {user_id}", await user(services, user_id))


@router.get("/api/users/{user_id}", dependencies=[AllowedForUser("analytics:read")])
async def user_api(user_id: UserIdPath, request: Request, services: ServicesDep, request_id: RequestIdDep) -> JSONResponse:
    await _audit_user_read(request, services, request_id, user_id)
    return _json(await user(services, user_id))


@router.get("/experiments", response_class=HTMLResponse, include_in_schema=False,
            dependencies=[Allowed("experiments:read")])
async def experiments_page(request: Request, services: ServicesDep) -> HTMLResponse:
    return _page(request, "experiments", "Experiments", await experiments(services, request.app.state.dashboard_results))


@router.get("/api/experiments", dependencies=[Allowed("experiments:read")])
async def experiments_api(request: Request, services: ServicesDep) -> JSONResponse:
    return _json(await experiments(services, request.app.state.dashboard_results))

