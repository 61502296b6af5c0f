"""Signals → implicit-feedback matrix: configured weights, dwell, decay and negative feedback."""

from __future__ import annotations

import math

import numpy as np
import pytest

from overdrive.config import DEFAULT_SIGNAL_WEIGHTS
from overdrive.domain.types import Signal
from overdrive.domain.weighting import SignalWeighting
from overdrive.models.collaborative_filtering.matrix import (
    InteractionMatrix,
    aggregate_signals,
)
from overdrive.domain.codec import signal_from_dict

DAY = 86_400.0


def sig(user, item, kind, ts, **kw):
    return {"user_id": user, "content_id": item, "signal_type": kind, "timestamp": ts, **kw}


def test_weights_dwell_and_negatives_are_summed_per_pair():
    now = 100 * DAY
    signals = [
        sig("a", "x", "view", now), sig("a", "x", "like", now),
        sig("a", "y", "skip", now), sig("a", "z", "dwell", now, duration=60.0),
        sig("b", "x", "hide", now),
    ]
    m = InteractionMatrix.from_signals(signals, signal_weights=DEFAULT_SIGNAL_WEIGHTS, half_life_days=None,
                                       items=["w"])
    assert m.item_ids[0] == "w"  # catalog items without signals keep a column
    assert m.user_row("a")["x"] == pytest.approx(3.0)
    assert m.user_row("a")["y"] == pytest.approx(-0.5)
    dwell = SignalWeighting(DEFAULT_SIGNAL_WEIGHTS).strength(signal_from_dict(signals[3]))
    assert m.user_row("a")["z"] == pytest.approx(dwell) and dwell > 1.2
    assert m.user_row("b") == {"x": pytest.approx(-3.0)}
    assert m.positive().nnz == 2
    assert m.user_row("nobody") == {}


def test_decay_halves_a_signal_per_half_life():
    now = 30 * DAY
    inter = aggregate_signals([sig("a", "old", "like", now - 14 * DAY), sig("a", "new", "like", now)],
                              signal_weights=DEFAULT_SIGNAL_WEIGHTS, half_life_days=14.0)
    values = dict(zip((inter.item_ids[i] for i in inter.item), inter.value))
    assert values["new"] == pytest.approx(2.0)
    assert values["old"] == pytest.approx(1.0, rel=1e-5)
    assert inter.now == now
    assert inter.last_ts.max() == now


def test_wire_and_domain_signals_are_accepted_alike():
    domain = Signal(user_id="a", signal_type="share", content_id="x", timestamp=1.0)
    m = InteractionMatrix.from_signals([domain, sig("a", "x", "share", 1.0, intensity=0.5)],
                                       signal_weights=DEFAULT_SIGNAL_WEIGHTS, half_life_days=None)
    assert m.user_row("a")["x"] == pytest.approx(4.0 * 1.5)


def test_from_dense_and_shape_checks():
    m = InteractionMatrix.from_dense([[1, 0], [0, -2]])
    assert m.shape == (2, 2) and m.nnz == 2
    with pytest.raises(ValueError):
        InteractionMatrix(["u"], ["i"], m.values)
    assert np.isfinite(m.values.data).all() and not math.isnan(float(m.values.sum()))


def test_the_matrix_does_not_depend_on_the_order_signals_arrive_in():
    """The log keeps signals in the order they were stored, which concurrent writers interleave:
    the same signals must give the same ids and values, or a retrain fits another model."""
    rng = np.random.default_rng(0)
    kinds = ["view", "like", "skip", "share", "dwell"]
    signals = [sig(f"u{rng.integers(30)}", f"i{rng.integers(50)}", kinds[rng.integers(5)],
                   float(1_700_000_000 + rng.integers(1000) + rng.random()), duration=5.0) for _ in range(2000)]
    signals += [sig("u1", "i1", "view", 1_700_000_500.0), sig("u0", "i2", "like", 1_700_000_500.0)]  # a tie
    first = InteractionMatrix.from_signals(signals, signal_weights=DEFAULT_SIGNAL_WEIGHTS, items=["i0"])
    for seed in range(3):
        shuffled = [signals[n] for n in np.random.default_rng(seed).permutation(len(signals))]
        other = InteractionMatrix.from_signals(shuffled, signal_weights=DEFAULT_SIGNAL_WEIGHTS, items=["i0"])
        assert other.user_ids == first.user_ids and other.item_ids == first.item_ids
        assert (other.values != first.values).nnz == 0
