"""Plain value types of the feature layer: what encoders return and what an item ends up with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Modalities an item can carry, in the order fusion lists them.
MODALITIES: tuple[str, ...] = ("text", "image", "video", "audio")


@dataclass(frozen=True, slots=True)
class Encoded:
    """One encoder's answer for a batch.

    `vectors` is (n, dim) float32 with L2-normalised rows. `space` names the embedding space the
    rows live in (e.g. ``"clip:<model>"``); fusion gives every space its own fixed projection, so
    two encoders that share a space (CLIP image and CLIP text) stay comparable after fusion.
    `descriptors` holds one dict of scalar statistics per input (duration, loudness, …).
    """

    vectors: np.ndarray
    space: str
    descriptors: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class EncoderStatus:
    """What `/health/ready` reports for one encoder."""

    modality: str
    model: str
    dim: int
    loaded: bool
    degraded: bool
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "modality": self.modality,
            "model": self.model,
            "dim": self.dim,
            "loaded": self.loaded,
            "degraded": self.degraded,
            "reason": self.reason,
        }


@dataclass(slots=True)
class ContentFeatures:
    """Everything the extractor derived from one item's content.

    `embedding` is the fused, L2-normalised item embedding of `ITEM_EMBEDDING_DIM`, or all zeros
    when the item had no usable content (`has_embedding` is then False). `modalities` lists the
    modalities that contributed; `degraded` those that used a lighter descriptor because model
    weights were absent; `errors` maps a field (``image_url``…) to why it could not be used.
    """

    item_id: str
    content_hash: str
    embedding: np.ndarray
    modalities: tuple[str, ...] = ()
    degraded: tuple[str, ...] = ()
    descriptors: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def has_embedding(self) -> bool:
        return bool(self.modalities)
