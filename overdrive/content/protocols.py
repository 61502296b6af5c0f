"""The one seam every modality plugs into: `Encoder`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar, runtime_checkable

from overdrive.content.types import Encoded, EncoderStatus

T_contra = TypeVar("T_contra", contravariant=True)


@runtime_checkable
class Encoder(Protocol[T_contra]):
    """Turns a batch of decoded inputs of one modality into vectors plus scalar descriptors.

    Implementations load their model lazily (on `load()` or the first `encode`), never at import
    or construction, and fall back to a documented lighter descriptor when weights are absent:
    `degraded` is then True and `status().reason` says why. `dim` and `space` are only final
    after loading. `encode` must accept an empty batch and return a (0, dim) array.
    """

    modality: str

    @property
    def dim(self) -> int: ...

    @property
    def degraded(self) -> bool: ...

    def load(self) -> None:
        """Load weights now (idempotent); never raises for missing weights — degrades instead."""

    def status(self) -> EncoderStatus: ...

    def encode(self, batch: Sequence[T_contra]) -> Encoded: ...
