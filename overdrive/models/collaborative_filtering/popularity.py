"""Popularity: the baseline every method must beat, and the prior for users we know nothing about."""

from __future__ import annotations

import numpy as np

from overdrive.domain.types import Item
from overdrive.models.collaborative_filtering.base import BaseRecommender
from overdrive.models.collaborative_filtering.matrix import InteractionMatrix


class PopularityRecommender(BaseRecommender):
    """Everyone gets log(1 + number of users with a positive interaction), the same for all."""

    name = "popularity"

    def _fit(self, matrix: InteractionMatrix, items: dict[str, Item]) -> None:
        """The base class already computed the prior."""

    def _score_rows(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self._prior, (len(users), self._prior.size)).copy()

    def _score_items(self, u: int, items: np.ndarray) -> np.ndarray:
        return self._prior[items]
