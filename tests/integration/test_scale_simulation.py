"""The scale simulation's parts: the extrapolation's arithmetic on costs with a known answer, and a
short real phase (one replica, a 3-master Redis Cluster, Tansu, a worker and the trainer) whose
measurements must account for every signal. The figures are printed by
`python -m benchmarks.scale_simulation` (docs/scaling.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.scale_simulation import (
    Deployment,
    OperationCost,
    Phase,
    extrapolate,
    per_replica_fit,
    run_phase,
)
from tests import real_servers


def _cost(api_us: float, *, commands: float = 10.0, redis_us: float = 100.0, worker_us: float = 50.0,
          broker_us: float = 20.0) -> OperationCost:
    return OperationCost(operations=1000, redis_commands=commands, redis_bytes_in=500.0, redis_bytes_out=1500.0,
                         redis_cpu_us=redis_us, api_cpu_us=api_us, api_cpu_us_per_replica=[api_us],
                         worker_cpu_us=worker_us, broker_cpu_us=broker_us, wall_s=1.0)


def test_work_every_replica_repeats_is_told_from_work_done_once() -> None:
    # 100 µs once per signal + 40 µs on every replica: 140, 180, 260 summed over 1, 2, 4 replicas.
    assert per_replica_fit([1, 2, 4], [140.0, 180.0, 260.0]) == pytest.approx((100.0, 40.0))
    assert per_replica_fit([2, 2], [150.0, 170.0]) == (160.0, 0.0)  # one replica count: no slope to tell


def test_extrapolation_charges_each_replica_for_the_whole_topic() -> None:
    phases = [Phase(replicas=r, signal=_cost(100.0 + 40.0 * r), ranking=_cost(1000.0, commands=20.0),
                    redis_bytes_per_item=1000.0, redis_bytes_per_person=2000.0, counted=10, sent=10,
                    topic_bytes_per_signal=200.0, idle_commands_per_s=0.0) for r in (1, 2, 4)]
    day = 86400.0
    needs = extrapolate(phases, Deployment(signals_per_day=day, rankings_per_day=2 * day, catalog=1e6, people=1e6,
                                           replicas=10, peak=1.0, master_busy=0.5, retention_days=1.0))
    assert needs["signals_per_s_peak"] == 1.0 and needs["rankings_per_s_peak"] == 2.0
    assert needs["redis_commands_per_s"] == 1 * 10 + 2 * 20
    assert needs["api_cpu_us_per_signal_at_scale"] == pytest.approx(100.0 + 10 * 40.0)
    assert needs["api_cores"] == pytest.approx(round((1 * 500.0 + 2 * 1000.0) / 1e6, 1))
    assert needs["redis_memory_gb"] == pytest.approx(3.0)  # 1e6 × 1,000 B + 1e6 × 2,000 B
    assert needs["topic_gb_retained"] == pytest.approx(round(day * 200.0 / 1e9, 1))


def test_a_short_phase_on_a_cluster_and_a_broker_accounts_for_every_signal(tmp_path: Path) -> None:
    if why := real_servers.redis_server_missing() or real_servers.tansu_missing():
        real_servers.unavailable(why)
    cluster = real_servers.shared_cluster()
    broker = real_servers.Tansu(log_dir=tmp_path).start()
    try:
        phase = run_phase(cluster, broker, tmp_path, 1, signals=60, rankings=10, items=200, people=20, seed=3,
                          settle_s=45.0)  # a busy host's noise: go on, and let the counts below judge
    finally:
        broker.stop()
    assert phase.counted == phase.sent  # every signal sent reached live state in Redis through the worker
    assert phase.signal.redis_commands > 0 and phase.ranking.redis_commands > 0
    assert phase.signal.redis_bytes_in > 0 and phase.ranking.redis_bytes_out > 0
    assert phase.redis_bytes_per_item > 0 and phase.redis_bytes_per_person > 0
    assert phase.topic_bytes_per_signal > 50  # an encoded signal: ids, type, time
