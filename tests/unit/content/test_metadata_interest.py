"""Content quality and the interest query: hand-sized inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from overdrive.content.interest import interest_query
from overdrive.content.metadata import content_quality


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


def test_interest_query_blends_the_normalised_long_and_short_term_profiles() -> None:
    items = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    long_term, short_term = np.array([1.0, 0, 0]), np.array([0, 5.0, 0])  # short's size does not matter
    mostly_long = items @ interest_query(long_term=long_term, short_term=short_term, short_weight=0.25)
    assert mostly_long[0] > mostly_long[1] > mostly_long[2] == 0.0
    mostly_short = items @ interest_query(long_term=long_term, short_term=short_term, short_weight=0.75)
    assert mostly_short[1] > mostly_short[0]
    np.testing.assert_allclose(interest_query(long_term=np.array([3.0, 0, 4.0])), [0.6, 0, 0.8])
    assert interest_query(long_term=None) is None
    assert interest_query(long_term=np.zeros(3)) is None
