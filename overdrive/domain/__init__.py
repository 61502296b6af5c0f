"""Plain domain types and the error tree. Imports nothing else of Overdrive's."""

from overdrive.domain.errors import (
    BackendUnavailable,
    InvalidInput,
    NotFound,
    Overloaded,
    OverdriveError,
)
from overdrive.domain.types import (
    COMPONENTS,
    CONTENT_TYPES,
    NEGATIVE_SIGNAL_WEIGHTS,
    SIGNAL_TYPES,
    SPEC_SIGNAL_WEIGHTS,
    Item,
    RankedItem,
    Signal,
)

__all__ = [
    "COMPONENTS",
    "CONTENT_TYPES",
    "NEGATIVE_SIGNAL_WEIGHTS",
    "SIGNAL_TYPES",
    "SPEC_SIGNAL_WEIGHTS",
    "BackendUnavailable",
    "InvalidInput",
    "Item",
    "NotFound",
    "OverdriveError",
    "Overloaded",
    "RankedItem",
    "Signal",
]
