"""What every FeatureStore backend is configured with (derived from Settings in wiring)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from overdrive.domain.types import DEFAULT_SIGNAL_WEIGHTS


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    signal_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SIGNAL_WEIGHTS))
    engagement_half_life_s: float = 24 * 3600.0
    interest_half_life_s: float = 14 * 86400.0
    short_term_half_life_s: float = 3600.0
    medium_term_half_life_s: float = 3 * 86400.0
    session_gap_s: float = 1800.0
    recent_per_user: int = 200
    dedupe_ttl_s: float = 7 * 86400.0  # how long a signal_id is remembered for de-duplication
    # A signal of one of these types takes its item out of the user's feed (consumed or rejected).
    excluding_signal_types: frozenset[str] = frozenset()
    timeline_weeks: int = 12  # weekly snapshots of what a user engaged with, kept this many weeks
