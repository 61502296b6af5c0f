"""Collaborative filtering: NMF, user/item neighbourhoods (cosine, BM25), ALS, BPR, LightFM hybrid,
EASE and popularity behind one `Recommender` seam, blended by `AdvancedCollaborativeFiltering`
with weights fitted on validation data, folded in live and saved as versioned artifacts.

`python -m overdrive.models.collaborative_filtering --evaluate` runs the offline evaluation.
Heavy libraries (implicit, lightfm, scikit-learn's NMF) load only when a method is created.
"""

from overdrive.models.collaborative_filtering.advanced import (
    AdvancedCollaborativeFiltering,
)
from overdrive.models.collaborative_filtering.artifacts import (
    ArtifactStore,
    ModelHandle,
)
from overdrive.models.collaborative_filtering.base import (
    BaseRecommender,
    IncrementalRecommender,
    Recommender,
)
from overdrive.models.collaborative_filtering.ensemble import EnsembleWeights
from overdrive.models.collaborative_filtering.matrix import (
    InteractionMatrix,
    Interactions,
    aggregate_signals,
)
from overdrive.models.collaborative_filtering.registry import (
    DEFAULT_METHODS,
    METHODS,
    create,
)

__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "AdvancedCollaborativeFiltering",
    "ArtifactStore",
    "BaseRecommender",
    "EnsembleWeights",
    "IncrementalRecommender",
    "InteractionMatrix",
    "Interactions",
    "ModelHandle",
    "Recommender",
    "aggregate_signals",
    "create",
]
