"""Vector search over item embeddings: the `VectorIndex` seam and its usearch implementation."""

from overdrive.index.protocols import VectorIndex
from overdrive.index.usearch_index import UsearchIndex

__all__ = ["UsearchIndex", "VectorIndex"]
