"""Latency and throughput of HTTP endpoints and signal-processing stages, and what the
dashboard and `/metrics` report of rankings, signals and models.

Percentiles come from a sliding window of recent observations (for `GET /performance/system`);
the same observations feed Prometheus histograms in a registry owned by this monitor (for
`GET /metrics`), so no module-level global state is involved. `sample()` (every few seconds, from
the dashboard's sampler) turns the counters into one point of the overview's history: requests/s,
error rate and P50/P95/P99 per endpoint over the interval, signals/s by type, the gauges.
The monitor also holds the ranking observer (`rankings`), the applied-signal counter (`signals`)
and the models' training history (`models`), and exports them all (`_QualityCollector`).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from overdrive.observability.models import ModelHistory
from overdrive.observability.rankings import RankingMonitor
from overdrive.observability.signals import SignalMonitor

_WINDOW = 4096
HISTORY_POINTS = 720  # samples kept for the overview (an hour at the default 5 s)
_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(slots=True)
class _Series:
    count: int = 0
    errors: int = 0
    items: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_WINDOW))
    interval_ms: deque[float] = field(default_factory=lambda: deque(maxlen=4 * _WINDOW))  # since the last sample
    sampled_count: int = 0
    sampled_errors: int = 0


def _summary(series: _Series) -> dict:
    lat = np.fromiter(series.latencies_ms, dtype=float)
    p50, p95, p99 = np.percentile(lat, [50, 95, 99]) if lat.size else (0.0, 0.0, 0.0)
    return {
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(float(lat.max()), 3) if lat.size else 0.0,
        "window": int(lat.size),
    }


class PerformanceMonitor:
    def __init__(self, *, history_path: Path | None = None) -> None:
        self._started = time.time()
        self.rankings = RankingMonitor()
        self.signals = SignalMonitor()
        self.models = ModelHistory(history_path)
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY_POINTS)
        self.live: dict[str, Any] = {}  # figures the sampler reads from services: readiness, catalog sizes
        self._last_sample = (time.time(), {})  # (when, signals per type then)
        self._routes: dict[str, _Series] = defaultdict(_Series)
        self._stages: dict[str, _Series] = defaultdict(_Series)
        self._gauges: dict[str, Callable[[], float]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        self._http = Histogram("overdrive_http_request_seconds", "HTTP request latency", ["route", "status"],
                               buckets=_BUCKETS_S, registry=self.registry)
        self._stage = Histogram("overdrive_signal_stage_seconds", "Signal processing stage latency per batch",
                                ["stage"], buckets=_BUCKETS_S, registry=self.registry)
        self._processed = Counter("overdrive_signals_processed", "Signals through each stage", ["stage"],
                                  registry=self.registry)
        self._gauge = Gauge("overdrive_gauge", "Live service gauges (queue depth, …)", ["name"], registry=self.registry)
        self.registry.register(_QualityCollector(self))

    def record(self, route: str, latency_ms: float, status: int) -> None:
        r = self._routes[route]
        r.count += 1
        if status >= 500:
            r.errors += 1
        r.latencies_ms.append(latency_ms)
        r.interval_ms.append(latency_ms)
        self._http.labels(route=route, status=str(status)).observe(latency_ms / 1000.0)

    def record_stage(self, stage: str, latency_ms: float, items: int = 1) -> None:
        """One pass of a signal-processing stage over `items` signals took `latency_ms`."""
        s = self._stages[stage]
        s.count += 1
        s.items += items
        s.latencies_ms.append(latency_ms)
        self._stage.labels(stage=stage).observe(latency_ms / 1000.0)
        self._processed.labels(stage=stage).inc(items)

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        """Report `read()` as a live gauge (e.g. queue depth)."""
        self._gauges[name] = read

    def forget_user(self, user_id: str) -> None:
        """Erasure: the user's recent rankings and signals kept for the dashboard go."""
        self.rankings.forget_user(user_id)
        self.signals.forget_user(user_id)

    def snapshot(self) -> dict:
        uptime = time.time() - self._started
        by_type = self.signals.by_type()
        return {
            "uptime_s": round(uptime, 3),
            "endpoints": {
                route: {"count": r.count, "server_errors": r.errors, "latency_ms": _summary(r)}
                for route, r in sorted(self._routes.items())
            },
            "signal_stages": {
                stage: {
                    "batches": s.count,
                    "signals": s.items,
                    "signals_per_s": round(s.items / uptime, 3) if uptime else 0.0,
                    "latency_ms": _summary(s),
                }
                for stage, s in sorted(self._stages.items())
            },
            # Applied by this process since it started; with Kafka, every replica's, read back from the topic.
            "signals": {"total": sum(by_type.values()), "by_type": dict(sorted(by_type.items()))},
            "gauges": {name: read() for name, read in sorted(self._gauges.items())},
        }

    def sample(self, now: float | None = None) -> dict[str, Any]:
        """One point of the overview's history: the interval since the previous point."""
        now = time.time() if now is None else now
        since, signals_then = self._last_sample
        dt = max(now - since, 1e-9)
        routes = {}
        requests = errors = 0
        for route, r in self._routes.items():
            n, e = r.count - r.sampled_count, r.errors - r.sampled_errors
            r.sampled_count, r.sampled_errors = r.count, r.errors
            if not n:
                r.interval_ms.clear()
                continue
            lat = np.fromiter(r.interval_ms, dtype=float) if r.interval_ms else np.zeros(1)
            r.interval_ms.clear()
            p50, p95, p99 = np.percentile(lat, [50, 95, 99])
            routes[route] = {"rps": round(n / dt, 3), "error_rate": round(e / n, 6),
                             "p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3)}
            requests += n
            errors += e
        signals_now = self.signals.by_type()
        self._last_sample = (now, signals_now)
        point = {
            "t": round(now, 3),
            "requests_per_s": round(requests / dt, 3),
            "errors_per_s": round(errors / dt, 3),
            "routes": routes,
            "signals_per_s": {t: round((n - signals_then.get(t, 0)) / dt, 3) for t, n in sorted(signals_now.items())},
            "gauges": {name: read() for name, read in sorted(self._gauges.items())},
        }
        self.history.append(point)
        return point

    def history_since(self, t: float = 0.0) -> list[dict[str, Any]]:
        return [p for p in self.history if p["t"] > t]

    def prometheus(self) -> bytes:
        for name, read in self._gauges.items():
            self._gauge.labels(name=name).set(read())
        return generate_latest(self.registry)


class _QualityCollector:
    """Rankings, signals, catalog, readiness and model metrics, read when `/metrics` is scraped."""

    def __init__(self, monitor: PerformanceMonitor) -> None:
        self._m = monitor

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: these names are this collector's alone

    def collect(self) -> Iterator[Metric]:
        m = self._m
        signals = CounterMetricFamily("overdrive_signals_applied", "Signals applied (with Kafka: read from the topic), by type",
                                      labels=["type"])
        for kind, n in sorted(m.signals.by_type().items()):
            signals.add_metric([kind], n)
        yield signals

        counts = m.rankings.counters()
        rankings = CounterMetricFamily("overdrive_rankings", "Rankings served, by strategy", labels=["strategy"])
        for strategy, n in sorted(counts["rankings"].items()):
            rankings.add_metric([strategy], n)
        yield rankings
        decided = CounterMetricFamily("overdrive_rankings_decided", "Rankings whose top item's largest contribution "
                                      "came from this component", labels=["component"])
        for component, n in sorted(counts["decided"].items()):
            decided.add_metric([component], n)
        yield decided
        yield CounterMetricFamily("overdrive_ranking_items_served", "Items served in rankings", value=counts["served"])
        yield CounterMetricFamily("overdrive_ranking_cold_checked_items", "Items served in rankings whose blend "
                                  "scored engagement (real_time)", value=counts["cold_checked"])
        yield CounterMetricFamily("overdrive_ranking_cold_items_served", "Of those, items with no engagement (cold)",
                                  value=counts["cold"])
        scores = HistogramMetricFamily("overdrive_ranking_component_score", "Each component's own score of the "
                                       "items served", labels=["component"])
        for component, h in m.rankings.score_histograms().items():
            cumulative = np.cumsum(h["counts"]).tolist()
            buckets = [(repr(b), c) for b, c in zip(h["buckets"], cumulative[:-1], strict=True)]
            buckets.append(("+Inf", cumulative[-1]))
            scores.add_metric([component], buckets, h["sum"])
        yield scores

        live = m.live
        catalog_items = live.get("catalog_items")
        health = m.rankings.catalog_health(catalog_items)
        yield GaugeMetricFamily("overdrive_ranking_distinct_items_served", "Distinct items served in the last hour",
                                value=health["distinct_items_served_last_hour"])
        if catalog_items is not None:
            yield GaugeMetricFamily("overdrive_catalog_items", "Items in the catalog", value=catalog_items)
            yield GaugeMetricFamily("overdrive_ranking_coverage_ratio", "Distinct items served in the last hour "
                                    "over catalog items", value=health["coverage_last_hour"] or 0.0)
        if live.get("content_items") is not None:
            yield GaugeMetricFamily("overdrive_catalog_content_items", "Catalog items with content features indexed",
                                    value=live["content_items"])
        yield GaugeMetricFamily("overdrive_ranking_exposure_gini", "Gini coefficient of exposures over the catalog "
                                "in the last hour (0 even, 1 all on one item)", value=health["exposure_gini_last_hour"] or 0.0)

        ready = live.get("readiness")
        if ready is not None:
            up = GaugeMetricFamily("overdrive_dependency_up", "1 when the dependency's readiness check passes",
                                   labels=["dependency"])
            for name, check in sorted(ready.items()):
                up.add_metric([name], 1.0 if check.get("ok") else 0.0)
            yield up
            yield GaugeMetricFamily("overdrive_ready", "1 when every readiness check passes (GET /health/ready)",
                                    value=1.0 if all(c.get("ok") for c in ready.values()) else 0.0)
        yield from _model_metrics(m.models)
        if live.get("blend_weights"):
            weights = GaugeMetricFamily("overdrive_blend_weight", "The weight per component the learned blend ranks "
                                        "with now (the configured ones until it is fitted)", labels=["component"])
            for component, value in sorted(live["blend_weights"].items()):
                weights.add_metric([component], value)
            yield weights
            yield GaugeMetricFamily("overdrive_blend_fitted", "1 once the learned blend has been fitted on feedback",
                                    value=1.0 if live.get("blend_fitted") else 0.0)


def _model_metrics(models: ModelHistory) -> Iterator[Metric]:
    ndcg = GaugeMetricFamily("overdrive_model_validation_ndcg", "Validation NDCG@10 of the served model, per "
                             "ensemble member (and the ensemble)", labels=["model", "member"])
    fit = GaugeMetricFamily("overdrive_model_fit_seconds", "Seconds each member of the served model took to fit",
                            labels=["model", "member"])
    training = GaugeMetricFamily("overdrive_model_training_seconds", "Seconds the served model's training took "
                                 "(read, fit, publish)", labels=["model"])
    fitted_at = GaugeMetricFamily("overdrive_model_fitted_timestamp_seconds", "When the served model was fitted",
                                  labels=["model"])
    trainings = CounterMetricFamily("overdrive_model_trainings_seen", "Model versions this service has seen published",
                                    labels=["model"])
    seen: dict[str, int] = defaultdict(int)
    latest: dict[str, dict[str, Any]] = {}
    for record in models.records():
        seen[record["model"]] += 1
        latest[record["model"]] = record
    for model, n in sorted(seen.items()):
        trainings.add_metric([model], n)
    cf = latest.get("collaborative")
    if cf is not None:
        for member, value in sorted(cf.get("validation_ndcg@10", {}).items()):
            ndcg.add_metric(["collaborative", member], value)
        for member, value in sorted(cf.get("fit_seconds", {}).items()):
            fit.add_metric(["collaborative", member], value)
        if cf.get("training_seconds") is not None:
            training.add_metric(["collaborative"], cf["training_seconds"])
    for model, record in sorted(latest.items()):
        if record.get("fitted_at"):
            fitted_at.add_metric([model], float(record["fitted_at"]))
    yield from (ndcg, fit, training, fitted_at, trainings)
