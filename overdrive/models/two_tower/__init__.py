"""Two-tower model: an item tower over id, content modalities and metadata, a user tower over id
and the user's recent signals, trained with in-batch sampled softmax and a log-Q correction.

`TwoTowerModel` is the model itself; `TwoTowerRecommender` wraps it behind the collaborative
`Recommender` seam (registered as "two_tower"). `python -m overdrive.models.two_tower --evaluate`
runs the offline evaluation. torch loads only when a submodule that needs it is imported.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TwoTowerModel", "TwoTowerRecommender"]


def __getattr__(name: str) -> Any:
    if name == "TwoTowerModel":
        from overdrive.models.two_tower.model import TwoTowerModel

        return TwoTowerModel
    if name == "TwoTowerRecommender":
        from overdrive.models.two_tower.recommender import TwoTowerRecommender

        return TwoTowerRecommender
    raise AttributeError(name)
