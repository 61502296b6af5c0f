"""Latency and throughput of HTTP endpoints and signal-processing stages.

Percentiles come from a sliding window of recent observations (for `GET /performance/system`);
the same observations feed Prometheus histograms in a registry owned by this monitor (for
`GET /metrics`), so no module-level global state is involved.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_WINDOW = 4096
_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(slots=True)
class _Series:
    count: int = 0
    errors: int = 0
    items: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_WINDOW))


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
    def __init__(self) -> None:
        self._started = time.time()
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

    def record(self, route: str, latency_ms: float, status: int) -> None:
        r = self._routes[route]
        r.count += 1
        if status >= 500:
            r.errors += 1
        r.latencies_ms.append(latency_ms)
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

    def snapshot(self) -> dict:
        uptime = time.time() - self._started
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
            "gauges": {name: read() for name, read in sorted(self._gauges.items())},
        }

    def prometheus(self) -> bytes:
        for name, read in self._gauges.items():
            self._gauge.labels(name=name).set(read())
        return generate_latest(self.registry)
