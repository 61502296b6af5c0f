"""Value types shared by every layer. Times are float epoch seconds (UTC)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

# The spec's ten signal types and weights; the defaults of `Settings.signal_weights`.
SPEC_SIGNAL_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "like": 2.0,
    "comment": 3.0,
    "share": 4.0,
    "follow": 5.0,
    "bookmark": 2.5,
    "click": 1.5,
    "scroll": 0.5,
    "dwell": 1.2,
    "completion": 2.8,
}
# Negative feedback a feed needs; negative weights push items and their features down.
NEGATIVE_SIGNAL_WEIGHTS: dict[str, float] = {
    "skip": -0.5,
    "hide": -3.0,
    "dislike": -2.0,
    "report": -5.0,
}
SIGNAL_TYPES: tuple[str, ...] = tuple(SPEC_SIGNAL_WEIGHTS) + tuple(NEGATIVE_SIGNAL_WEIGHTS)
DEFAULT_SIGNAL_WEIGHTS: dict[str, float] = {**SPEC_SIGNAL_WEIGHTS, **NEGATIVE_SIGNAL_WEIGHTS}

CONTENT_TYPES: tuple[str, ...] = ("text", "image", "video", "audio", "mixed")

# The spec's ranking weights (and `context`); their names, in this order, are the components explanations list.
DEFAULT_RANKING_WEIGHTS: dict[str, float] = {
    "content_based": 0.3,
    "collaborative": 0.25,
    "real_time": 0.25,
    "user_interests": 0.1,
    "freshness": 0.1,
    "context": 0.2,  # Overdrive's own: the lift of the request's context (device, daypart, place)
    "two_tower": 0.0,  # Overdrive's own: user · item vectors of the two-tower model, where one is served
}
COMPONENTS: tuple[str, ...] = tuple(DEFAULT_RANKING_WEIGHTS)


@dataclass(frozen=True, slots=True)
class Signal:
    """One user action on one item, as acknowledged by the service."""

    user_id: str
    signal_type: str
    content_id: str
    timestamp: float
    duration: float | None = None
    intensity: float = 1.0
    signal_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Item:
    """A catalog item. Media fields hold an http(s) URL, a data URL or a file path."""

    id: str
    type: str = "text"
    text: str | None = None
    image_url: str | None = None
    video_url: str | None = None
    audio_url: str | None = None
    author_id: str | None = None
    created_at: float | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    def features(self) -> tuple[str, ...]:
        """Sparse categorical features used for interest matching: tags, author, media type."""
        return _item_features(self.tags, self.author_id, self.type)


@functools.lru_cache(maxsize=1 << 16)
def _item_features(tags: tuple[str, ...], author_id: str | None, content_type: str) -> tuple[str, ...]:
    # Memoised: every signal on an item needs these strings, and popular items repeat a lot.
    feats = [f"tag:{t.lower()}" for t in tags]
    if author_id:
        feats.append(f"author:{author_id}")
    feats.append(f"type:{content_type}")
    return tuple(feats)


@dataclass(frozen=True, slots=True)
class RankedItem:
    """One ranked candidate: blended score, 1-based feed position and each component's share.

    `scores` holds each component's contribution (normalised weight × its score; they add up to
    `score`), `components` each component's own score before weighting. Diversity re-ranking may
    place an item below one with a lower `score`.
    """

    id: str
    score: float
    rank: int
    scores: dict[str, float]
    components: dict[str, float] = field(default_factory=dict)


class Candidate(NamedTuple):
    """A candidate to rank, named by id, optionally carrying content that overrides the catalog's.

    A named tuple: a request builds one per candidate, and a frozen dataclass's `__init__` costs
    several times as much."""

    id: str
    content: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RankResult:
    """One answered ranking: the feed in order, which strategy made it, and how long it took."""

    user_id: str
    items: list[RankedItem]
    strategy: str
    request_id: str
    processing_time_ms: float
    candidates_considered: int
    experiment: dict[str, Any] | None = None  # the experiment and arm that served it, if any


@dataclass(frozen=True, slots=True)
class Session:
    """A run of a user's signals with no gap longer than the configured inactivity gap."""

    started_at: float
    last_signal_at: float
    signals: int


@dataclass(frozen=True, slots=True)
class RankingReads:
    """What one ranking reads of live state, read together (one round trip on Redis): which of
    the candidates the user excluded, their decayed engagement, the user's long- and short-term
    interest profiles and all-time signal total."""

    excluded: set[str]
    engagement: dict[str, float]
    long_interests: dict[str, float]
    short_interests: dict[str, float]
    signal_total: int
    context_interests: dict[str, float] = field(default_factory=dict)  # the user's, in the request's context
    device_interests: dict[str, float] = field(default_factory=dict)  # the user's, on its device at any hour
    # Set by the ranker: the request's `overdrive.domain.context.Context`, and everyone's interests
    # in its context and in every context together (`FeatureStore.context_prior`, cached).
    context: Any = None
    context_prior: dict[str, float] = field(default_factory=dict)
    context_baseline: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UserModel:
    """A user's habits and how their interests move, decayed over time (long half-life): device
    classes, time zones, local weekday:hour activity, countries and cities, interest profiles per
    `<device class>|<daypart>` context, and per ISO week the features they engaged with."""

    devices: dict[str, float]
    timezones: dict[str, float]
    hours: dict[str, float]  # "<weekday 0=Monday>:<hour>" -> activity
    locations: dict[str, float]  # "PT" and "PT/Lisbon" -> activity
    contexts: dict[str, dict[str, float]]  # "mobile|morning" -> feature -> affinity
    weeks: dict[str, dict[str, float]]  # "2026-W49" -> feature -> summed strength
    medium_interests: dict[str, float]


@dataclass(frozen=True, slots=True)
class UserActivity:
    """What the live state knows about a user's behaviour."""

    signal_counts: dict[str, int]
    recent: list[Signal]  # newest first
    session: Session | None  # the latest session (it may have ended)
    sessions_total: int
