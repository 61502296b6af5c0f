"""Metadata enrichment and interest vectors: hand-sized inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from overdrive.content.interest import InterestVector, build_interest, content_scores
from overdrive.content.metadata import author_reputation, content_quality, engagement_metrics


def test_engagement_metrics_rates_per_impression() -> None:
    m = engagement_metrics({"view": 80, "skip": 20, "like": 10, "share": 5, "completion": 40, "hide": 2},
                           signal_weights={"view": 1.0, "like": 2.0, "skip": -0.5})
    assert m["impressions"] == 100
    assert m["like_rate"] == 0.1 and m["share_rate"] == 0.05 and m["skip_rate"] == 0.2
    assert m["engagement_rate"] == pytest.approx(0.55)
    assert m["negative_rate"] == pytest.approx(0.22)
    assert m["weighted_engagement"] == pytest.approx((80 + 20 - 10) / 100)
    assert engagement_metrics({})["engagement_rate"] == 0.0


def test_author_reputation_is_smoothed_toward_the_platform_rate() -> None:
    new = author_reputation(engaged=0, impressions=0, platform_rate=0.1)
    assert new.rate == pytest.approx(0.1) and new.reputation == pytest.approx(0.5)
    lucky = author_reputation(engaged=2, impressions=2, platform_rate=0.1)
    proven = author_reputation(engaged=300, impressions=1000, platform_rate=0.1)
    poor = author_reputation(engaged=10, impressions=1000, platform_rate=0.1)
    assert 0.5 < lucky.reputation < proven.reputation < 1.0
    assert lucky.rate < 0.2  # two lucky views do not make a star
    assert poor.reputation < 0.5
    with pytest.raises(ValueError):
        author_reputation(engaged=1, impressions=1, platform_rate=0.0)


def test_content_quality_averages_present_modalities() -> None:
    good_image = {"image_width": 1024, "image_height": 768, "image_sharpness": 0.02,
                  "image_brightness": 0.5, "image_contrast": 0.25}
    dark_tiny = {"image_width": 32, "image_height": 32, "image_sharpness": 0.0,
                 "image_brightness": 0.02, "image_contrast": 0.01}
    assert content_quality(good_image) > 0.9 > 0.3 > content_quality(dark_tiny)
    text = {"text_quality": 0.8, "text_n_words": 12}
    assert content_quality(text) == 0.8
    assert content_quality({**text, **good_image}) == pytest.approx((0.8 + content_quality(good_image)) / 2, abs=1e-3)
    silent = {"audio_duration_s": 3.0, "audio_rms_dbfs": -80.0, "audio_silence_ratio": 1.0}
    assert content_quality(silent) < 0.1 and content_quality({}) == 0.0


def test_interest_vector_decays_and_weights_signals() -> None:
    a, b = np.eye(4, dtype=np.float32)[0], np.eye(4, dtype=np.float32)[1]
    day = 86_400.0
    v = InterestVector.empty(4).update(a, weight=2.0, at=0.0, half_life_s=day)
    v = v.update(b, weight=2.0, at=day, half_life_s=day)  # a has halved by then
    np.testing.assert_allclose(v.vector, [1.0, 2.0, 0, 0])
    late = v.update(a, weight=2.0, at=0.0, half_life_s=day)  # out-of-order signal, decayed to now
    np.testing.assert_allclose(late.vector, [2.0, 2.0, 0, 0])
    neg = build_interest([(a, 1.0, 0.0), (b, -3.0, 0.0)], dim=4, half_life_s=day)
    np.testing.assert_allclose(neg.vector, [1.0, -3.0, 0, 0])
    assert neg.mass == 4.0


def test_content_scores_blend_long_and_short_term() -> None:
    items = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=np.float32)
    long_term, short_term = np.array([1.0, 0, 0]), np.array([0, 5.0, 0])
    s = content_scores(items, long_term=long_term, short_term=short_term, short_weight=0.25)
    assert s is not None and s[0] > s[1] > s[2] == s[3] == 0.0
    s2 = content_scores(items, long_term=long_term, short_term=short_term, short_weight=0.75)
    assert s2[1] > s2[0]
    only_long = content_scores(items, long_term=long_term)
    np.testing.assert_allclose(only_long, [1, 0, 0, 0])
    assert content_scores(items, long_term=None) is None
    assert content_scores(items, long_term=np.zeros(3)) is None
    assert content_scores(items, long_term=np.array([-1.0, 0, 0]))[0] == -1.0
