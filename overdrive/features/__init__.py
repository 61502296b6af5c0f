"""Content understanding: per-modality encoders behind one `Encoder` seam, fused item embeddings.

Importing this package loads no model and imports neither torch nor transformers; models load
on `MultiModalFeatureExtractor.load()` or first use.
"""

from overdrive.features.cache import FeatureCache, content_hash
from overdrive.features.extractor import MultiModalFeatureExtractor, text_input
from overdrive.features.fusion import Fusion
from overdrive.features.interest import InterestVector, build_interest, content_scores, interest_query
from overdrive.features.media import Media, MediaError, MediaLoader
from overdrive.features.pipeline import FeaturePipeline, SubmitReceipt
from overdrive.features.protocols import Encoder
from overdrive.features.types import Encoded, EncoderStatus, ItemFeatures

__all__ = [
    "Encoded",
    "Encoder",
    "EncoderStatus",
    "FeatureCache",
    "FeaturePipeline",
    "Fusion",
    "InterestVector",
    "ItemFeatures",
    "Media",
    "MediaError",
    "MediaLoader",
    "MultiModalFeatureExtractor",
    "SubmitReceipt",
    "build_interest",
    "content_hash",
    "content_scores",
    "interest_query",
    "text_input",
]
