"""Metadata enrichment: engagement metrics, smoothed author reputation, content quality.

Engagement and reputation change with every signal, so they are computed from counts the caller
keeps (the feature store), never cached with the content features. Content quality depends on
content only and is computed at extraction.

Author reputation is empirical-Bayes smoothing of the author's engagement rate: with `e`
engaged impressions out of `n` over all of the author's items, and a platform-wide rate `p`,
``rate = (e + k·p) / (n + k)`` — `k` (`prior_strength`) pseudo-impressions at the platform rate,
so a new author starts at the platform average and moves away only as evidence accumulates.
`reputation = rate / (rate + p)`: 0.5 for an average author, → 1 for far better, → 0 for worse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Which signal types count as an impression, as positive engagement, and as negative feedback.
IMPRESSION_SIGNALS = ("view", "skip")
POSITIVE_SIGNALS = ("like", "comment", "share", "follow", "bookmark", "click", "completion")
NEGATIVE_SIGNALS = ("skip", "hide", "dislike", "report")


def engagement_metrics(counts: Mapping[str, float], *, signal_weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """Rates per impression from per-signal-type counts for one item (or one author)."""
    impressions = max(sum(counts.get(s, 0.0) for s in IMPRESSION_SIGNALS), counts.get("view", 0.0), 0.0)
    positive = sum(counts.get(s, 0.0) for s in POSITIVE_SIGNALS)
    negative = sum(counts.get(s, 0.0) for s in NEGATIVE_SIGNALS)

    def rate(x: float) -> float:
        return round(x / impressions, 6) if impressions > 0 else 0.0

    out = {
        "impressions": float(impressions),
        "engagement_rate": rate(min(positive, impressions) if impressions else 0.0),
        "like_rate": rate(counts.get("like", 0.0)),
        "share_rate": rate(counts.get("share", 0.0)),
        "comment_rate": rate(counts.get("comment", 0.0)),
        "completion_rate": rate(counts.get("completion", 0.0)),
        "skip_rate": rate(counts.get("skip", 0.0)),
        "negative_rate": rate(negative),
    }
    if signal_weights is not None:
        weighted = sum(signal_weights.get(s, 0.0) * c for s, c in counts.items())
        out["weighted_engagement"] = rate(weighted)
    return out


@dataclass(frozen=True, slots=True)
class AuthorReputation:
    """Smoothed engagement rate of an author and its 0–1 reputation score."""

    rate: float
    reputation: float
    impressions: float


def author_reputation(
    *, engaged: float, impressions: float, platform_rate: float, prior_strength: float = 50.0
) -> AuthorReputation:
    """Empirical-Bayes smoothed reputation from the author's engaged/total impressions."""
    if prior_strength <= 0 or not 0 < platform_rate < 1:
        raise ValueError("need prior_strength > 0 and 0 < platform_rate < 1")
    engaged = min(max(engaged, 0.0), max(impressions, 0.0))
    rate = (engaged + prior_strength * platform_rate) / (max(impressions, 0.0) + prior_strength)
    return AuthorReputation(rate=rate, reputation=rate / (rate + platform_rate), impressions=max(impressions, 0.0))


def content_quality(descriptors: Mapping[str, Any]) -> float:
    """0–1 quality of an item's content: the mean of the scores of the modalities it has.

    text: `text_quality` (see text_stats). image: resolution (full marks from 512 px on the short
    side) × sharpness × exposure (brightness away from black/white, some contrast). video: the
    same on frames, × resolution, × a duration sanity factor (1–600 s). audio: level (−30 to −6
    dBFS RMS is fine; near-silence and clipping are not) × (1 − silence ratio).
    """
    scores: list[float] = []
    if (q := descriptors.get("text_quality")) is not None and descriptors.get("text_n_words"):
        scores.append(float(q))
    if descriptors.get("image_width"):
        scores.append(_visual(descriptors, "image_", min(descriptors["image_width"], descriptors["image_height"])))
    if descriptors.get("video_width"):
        short = min(descriptors["video_width"], descriptors["video_height"])
        duration = float(descriptors.get("video_duration_s") or 0.0)
        dur_ok = 1.0 if 1.0 <= duration <= 600.0 else 0.6
        scores.append(_visual(descriptors, "video_frame_", short) * dur_ok)
    if descriptors.get("audio_duration_s"):
        rms = float(descriptors.get("audio_rms_dbfs", -100.0))
        level = 1.0 if -30 <= rms <= -6 else (0.3 if rms < -50 or rms > -1 else 0.7)
        scores.append(level * (1.0 - 0.8 * float(descriptors.get("audio_silence_ratio", 0.0))))
    return round(sum(scores) / len(scores), 4) if scores else 0.0


def _visual(d: Mapping[str, Any], prefix: str, short_side: float) -> float:
    resolution = min(1.0, 0.3 + 0.7 * short_side / 512)
    sharp = min(1.0, 0.4 + 60.0 * float(d.get(f"{prefix}sharpness", 0.0)))
    brightness = float(d.get(f"{prefix}brightness", 0.5))
    contrast = float(d.get(f"{prefix}contrast", 0.2))
    exposure = (1.0 - 1.6 * abs(brightness - 0.5) ** 2) * min(1.0, 0.5 + 5.0 * contrast)
    return max(0.0, min(1.0, resolution * sharp * exposure))
