"""How an erased user is remembered without their id: the SHA-256 digest of it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def user_digest(user_id: str) -> str:
    return hashlib.sha256(user_id.encode()).hexdigest()


def erased_before(erasures: Mapping[str, float], user_id: str, at: float) -> bool:
    """Whether a record of `user_id` made at `at` predates that user's erasure (skip it)."""
    if not erasures:
        return False
    erased_at = erasures.get(user_digest(user_id))
    return erased_at is not None and at <= erased_at
