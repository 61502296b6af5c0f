"""`user_interests` scores from the user's profiles; an item whose features change is re-read."""

from __future__ import annotations

import math

import pytest

from overdrive.domain.types import Item, RankingReads
from overdrive.services.scorers import InterestScorer

pytestmark = pytest.mark.anyio


def reads(interests: dict[str, float], short: dict[str, float] | None = None) -> RankingReads:
    return RankingReads(excluded=set(), engagement={}, long_interests=interests, short_interests=short or {}, signal_total=1)


async def test_cosine_with_the_profile_and_a_retagged_item_rescored(anyio_backend: str) -> None:
    scorer = InterestScorer()
    cats = Item(id="a", type="video", tags=("cats",))
    dogs = Item(id="b", type="video", tags=("dogs",))
    profile = reads({"tag:cats": 3.0, "type:video": 1.0, "tag:never-seen": 2.0})
    scores = await scorer.score("u", [cats, dogs], 0.0, profile)
    norm = math.sqrt(3.0**2 + 1.0**2 + 2.0**2)
    cosines = [(3.0 + 1.0) / (norm * math.sqrt(2)), 1.0 / (norm * math.sqrt(2))]
    assert list(scores) == pytest.approx([1.0, cosines[1] / cosines[0]])
    retagged = Item(id="a", type="video", tags=("dogs",))  # the catalog hands out a new Item
    assert list(await scorer.score("u", [retagged, dogs], 0.0, profile)) == pytest.approx([1.0, 1.0])
    assert await scorer.score("u", [cats], 0.0, reads({})) is None  # no profile: nothing to say
