"""How much one signal says about a user's taste: type weight × intensity × dwell."""

from __future__ import annotations

import math
from collections.abc import Mapping

from overdrive.domain.types import Signal

_DWELL_SCALE_SECONDS = 30.0
_MAX_DWELL_BONUS = 1.5


class SignalWeighting:
    """Maps a signal to a signed strength using the configured signal weights."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        self._weights = dict(weights)

    def strength(self, signal: Signal) -> float:
        base = self._weights.get(signal.signal_type, 0.0) * signal.intensity
        if base > 0 and signal.duration:
            # Longer dwell on positive signals means more interest, with diminishing returns.
            base *= 1.0 + min(math.log1p(signal.duration / _DWELL_SCALE_SECONDS), _MAX_DWELL_BONUS)
        return base
