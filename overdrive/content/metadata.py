"""Content quality: a 0–1 score of an item's content, computed at extraction from the descriptors
the encoders report. (Engagement figures change with every signal and live in the live state.)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
