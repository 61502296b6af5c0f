"""`context` scores an item by how much more than usual its features are engaged in the request's
context — everyone's lift, the user's own as their evidence there grows — and boosts items local to
the request's country; a request that states no local time or device takes the user's habits."""

from __future__ import annotations

import math

import pytest

from overdrive.domain.context import Context
from overdrive.domain.types import Item, RankingReads, Signal
from overdrive.services.request_context import RequestContexts
from overdrive.services.scorers import ContextScorer
from overdrive.store.feature_config import FeatureConfig
from overdrive.store.memory_feature_store import MemoryFeatureStore

pytestmark = pytest.mark.anyio

NEWS = Item(id="news", type="text", tags=("news",))
FILM = Item(id="film", type="video", tags=("film",))


def reads(mine: dict[str, float], here: dict[str, float], everywhere: dict[str, float], *,
          usual: dict[str, float] | None = None, context: Context | None = None) -> RankingReads:
    return RankingReads(excluded=set(), engagement={}, long_interests=usual or {}, short_interests={}, signal_total=1,
                        context_interests=mine, context_prior=here, context_baseline=everywhere, context=context)


EVERYWHERE = {"tag:news": 500.0, "type:text": 500.0, "tag:film": 500.0, "type:video": 500.0}
HERE = {"tag:news": 270.0, "type:text": 270.0, "tag:film": 30.0, "type:video": 30.0}  # a news context


async def test_everyones_lift_in_the_context_ranks_a_newcomer(anyio_backend: str) -> None:
    film, news = await ContextScorer().score("u", [FILM, NEWS], 0.0, reads({}, HERE, EVERYWHERE))
    # news: 270 seen where its share predicts 150: lift (270 + 50) / (150 + 50) = 1.6
    assert news == pytest.approx(math.tanh(math.log(320 / 200)))
    assert film == pytest.approx(math.tanh(math.log(80 / 200)))


async def test_the_users_own_lift_wins_once_their_evidence_is_plenty(anyio_backend: str) -> None:
    usual = {"tag:news": 10.0, "type:text": 10.0, "tag:film": 10.0, "type:video": 10.0}
    a_little = await ContextScorer().score("u", [FILM, NEWS], 0.0, reads({"tag:film": 1.0, "type:video": 1.0}, HERE, EVERYWHERE, usual=usual))
    assert a_little[1] > a_little[0]
    plenty = {"tag:film": 40.0, "type:video": 40.0, "tag:news": 2.0, "type:text": 2.0}
    film, news = await ContextScorer().score("u", [FILM, NEWS], 0.0, reads(plenty, HERE, EVERYWHERE, usual=usual))
    assert film > 0 > news


async def test_a_little_seen_context_or_feature_says_little(anyio_backend: str) -> None:
    scorer = ContextScorer()
    few = {"tag:news": 9.0, "type:text": 9.0, "tag:film": 1.0, "type:video": 1.0}
    film, news = await scorer.score("u", [FILM, NEWS], 0.0, reads({}, few, EVERYWHERE))
    assert abs(film) < 0.1 and abs(news) < 0.1
    assert await scorer.score("u", [FILM, NEWS], 0.0, reads({}, {}, {})) is None  # nothing to say


async def test_items_local_to_the_request_country_are_boosted(anyio_backend: str) -> None:
    scorer = ContextScorer()
    lisbon = Item(id="l", metadata={"location": {"country": "pt", "city": "Lisbon"}})
    paris = Item(id="p", metadata={"location": {"country": "FR"}})
    scores = await scorer.score("u", [paris, lisbon], 0.0, reads({}, {}, {}, context=Context(country="PT")))
    assert list(scores) == pytest.approx([0.0, math.tanh(0.5)])
    assert await scorer.score("u", [paris], 0.0, reads({}, {}, {}, context=Context(country="PT"))) is None


async def test_a_request_without_local_time_or_device_takes_the_users_habits(anyio_backend: str) -> None:
    features = MemoryFeatureStore(config=FeatureConfig())
    at = 1_700_000_000.0  # 22:13 UTC; 07:13 in Tokyo
    tokyo = {"context": {"device_class": "mobile", "timezone": "Asia/Tokyo"}}
    await features.apply([Signal(user_id="u", signal_type="like", content_id="news", timestamp=at - 60 * i,
                                 metadata=tokyo, signal_id=f"s{i}") for i in range(3)], {"news": NEWS}, now=at)
    contexts = RequestContexts(features)
    assert await contexts.key("u", Context(device_class="tv"), at) == "tv|morning"
    assert await contexts.key("u", Context(device_class="tv", utc_offset_minutes=0), at) == "tv|night"  # stated wins
    assert await contexts.key("u", Context(), at) == "mobile|morning"  # the device they use then
    assert await contexts.key("stranger", None, at) == "-|-"
