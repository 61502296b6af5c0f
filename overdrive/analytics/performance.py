"""Per-endpoint request counts and latency percentiles over a sliding window of recent requests."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

import numpy as np

_WINDOW = 4096


@dataclass(slots=True)
class _Route:
    count: int = 0
    errors: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_WINDOW))


class PerformanceMonitor:
    def __init__(self) -> None:
        self._routes: dict[str, _Route] = defaultdict(_Route)
        self._started = time.time()

    def record(self, route: str, latency_ms: float, status: int) -> None:
        r = self._routes[route]
        r.count += 1
        if status >= 500:
            r.errors += 1
        r.latencies_ms.append(latency_ms)

    def snapshot(self) -> dict:
        endpoints = {}
        for route, r in sorted(self._routes.items()):
            lat = np.fromiter(r.latencies_ms, dtype=float)
            p50, p95, p99 = np.percentile(lat, [50, 95, 99]) if lat.size else (0.0, 0.0, 0.0)
            endpoints[route] = {
                "count": r.count,
                "server_errors": r.errors,
                "latency_ms": {
                    "p50": round(float(p50), 3),
                    "p95": round(float(p95), 3),
                    "p99": round(float(p99), 3),
                    "max": round(float(lat.max()), 3) if lat.size else 0.0,
                    "window": int(lat.size),
                },
            }
        return {"uptime_s": round(time.time() - self._started, 3), "endpoints": endpoints}
