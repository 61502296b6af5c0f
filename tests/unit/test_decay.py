"""DecayedSum against a brute-force sum of w_i * 2^(-(now - t_i) / half_life)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from overdrive.domain.decay import DecayedSum, decay_rate

HALF_LIFE = 100.0
RATE = decay_rate(HALF_LIFE)


def brute_force(events: list[tuple[float, float]], now: float, half_life: float = HALF_LIFE) -> float:
    return sum(w * 2.0 ** (-(now - t) / half_life) for w, t in events)


def fold(events: list[tuple[float, float]], rate: float = RATE) -> DecayedSum:
    d = DecayedSum()
    for w, t in events:
        d.add(w, t, rate)
    return d


def test_decay_rate_is_ln2_over_half_life() -> None:
    assert decay_rate(HALF_LIFE) == pytest.approx(math.log(2) / HALF_LIFE)
    assert math.exp(-decay_rate(7.0) * 7.0) == pytest.approx(0.5)


def test_empty_sum_is_zero() -> None:
    d = DecayedSum()
    assert d.at(0.0, RATE) == 0.0
    assert d.at(1e9, RATE) == 0.0


def test_single_event_halves_every_half_life() -> None:
    d = fold([(8.0, 1000.0)])
    assert d.at(1000.0, RATE) == pytest.approx(8.0)
    assert d.at(1100.0, RATE) == pytest.approx(4.0)
    assert d.at(1300.0, RATE) == pytest.approx(1.0)


HAND_MADE = [(1.0, 0.0), (2.0, 50.0), (-0.5, 120.0), (4.0, 120.0), (3.0, 400.0)]


@pytest.mark.parametrize("now", [400.0, 401.0, 500.0, 1000.0])
def test_in_order_matches_brute_force(now: float) -> None:
    assert fold(HAND_MADE).at(now, RATE) == pytest.approx(brute_force(HAND_MADE, now), rel=1e-12)


@pytest.mark.parametrize(
    "order",
    [
        [4, 3, 2, 1, 0],  # fully reversed
        [2, 0, 4, 1, 3],  # shuffled
        [4, 0, 1, 2, 3],  # newest first, then backfill in order
    ],
)
@pytest.mark.parametrize("now", [400.0, 650.0])
def test_out_of_order_matches_brute_force(order: list[int], now: float) -> None:
    events = [HAND_MADE[i] for i in order]
    assert fold(events).at(now, RATE) == pytest.approx(brute_force(HAND_MADE, now), rel=1e-12)


def test_order_does_not_matter_hand_computed() -> None:
    # 4 at t=0 and 2 at t=100, seen at t=200: 4/4 + 2/2 = 2, whichever arrives first.
    assert fold([(4.0, 0.0), (2.0, 100.0)]).at(200.0, RATE) == pytest.approx(2.0)
    assert fold([(2.0, 100.0), (4.0, 0.0)]).at(200.0, RATE) == pytest.approx(2.0)


def test_reference_time_is_the_latest_event() -> None:
    d = fold([(1.0, 300.0), (1.0, 100.0), (1.0, 200.0)])
    assert d.t_ref == 300.0
    assert d.value == pytest.approx(1.0 + 0.25 + 0.5)


def test_reading_does_not_change_the_sum() -> None:
    d = fold(HAND_MADE)
    first = d.at(900.0, RATE)
    d.at(5000.0, RATE)
    assert d.at(900.0, RATE) == first


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_random_event_streams_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    half_life = float(rng.uniform(10.0, 10_000.0))
    rate = decay_rate(half_life)
    # Epoch-like times spread over a few half-lives, arriving in random order (backfills).
    base = 1_700_000_000.0
    times = base + rng.uniform(0.0, 5 * half_life, size=n)
    weights = rng.choice([1.0, 2.0, 4.0, -0.5, -3.0], size=n) * rng.uniform(0.1, 2.0, size=n)
    events = [(float(w), float(t)) for w, t in zip(weights, times, strict=True)]
    d = fold(events, rate)
    for now in (float(times.max()), float(times.max()) + half_life, float(times.max()) + 3.3 * half_life):
        expected = brute_force(events, now, half_life)
        scale = sum(abs(w) * 2.0 ** (-(now - t) / half_life) for w, t in events)
        assert abs(d.at(now, rate) - expected) <= 1e-9 * scale


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_random_interleaved_adds_and_reads(seed: int) -> None:
    """Reading between adds (as the feature store does) never disturbs exactness."""
    rng = np.random.default_rng(seed)
    d = DecayedSum()
    seen: list[tuple[float, float]] = []
    clock = 0.0
    for _ in range(200):
        clock += float(rng.exponential(20.0))
        t = clock - float(rng.uniform(0.0, 200.0)) * float(rng.random() < 0.3)  # 30 % backfilled
        w = float(rng.normal())
        d.add(w, t, RATE)
        seen.append((w, t))
        now = max(clock, d.t_ref)
        expected = brute_force(seen, now)
        scale = sum(abs(w) * 2.0 ** (-(now - t) / HALF_LIFE) for w, t in seen)
        assert abs(d.at(now, RATE) - expected) <= 1e-9 * max(scale, 1e-300)
