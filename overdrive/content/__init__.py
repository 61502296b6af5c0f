"""Content understanding: per-modality encoders behind one `Encoder` seam, fused item embeddings.

Importing this package loads no model and imports neither torch nor transformers; models load
on `MultiModalFeatureExtractor.load()` or first use.
"""

from overdrive.content.cache import ContentCache, content_hash
from overdrive.content.extractor import MultiModalFeatureExtractor, text_input
from overdrive.content.fusion import Fusion
from overdrive.content.interest import interest_query
from overdrive.content.media import Media, MediaError, MediaLoader
from overdrive.content.pipeline import ContentPipeline, SubmitReceipt
from overdrive.content.protocols import Encoder
from overdrive.content.types import Encoded, EncoderStatus, ContentFeatures

__all__ = [
    "Encoded",
    "Encoder",
    "EncoderStatus",
    "ContentCache",
    "ContentPipeline",
    "Fusion",
    "ContentFeatures",
    "Media",
    "MediaError",
    "MediaLoader",
    "MultiModalFeatureExtractor",
    "SubmitReceipt",
    "content_hash",
    "interest_query",
    "text_input",
]
