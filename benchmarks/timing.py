"""Shared by the benchmark scripts: time a callable repeatedly, summarise latencies."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def timed(fn: Callable[[int], object], n: int) -> list[float]:
    """Milliseconds of each of `n` calls `fn(0) … fn(n-1)`."""
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def percentiles(ms: list[float], digits: int = 3) -> dict[str, float]:
    p50, p95, p99 = np.percentile(np.asarray(ms), [50, 95, 99])
    return {"p50_ms": round(float(p50), digits), "p95_ms": round(float(p95), digits), "p99_ms": round(float(p99), digits)}
