"""The ranking blend over real parts: SQLite log and catalog, the in-process bus and processor."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from overdrive.config import DEFAULT_RANKING_WEIGHTS, DEFAULT_SIGNAL_WEIGHTS
from overdrive.domain.errors import InvalidInput
from overdrive.domain.types import Candidate, Item, Signal
from overdrive.observability.performance import PerformanceMonitor
from overdrive.services.ranking import EnhancedOverdriveRankingService, strategies_from_weights
from overdrive.services.scorers import EngagementScorer, FreshnessScorer, InterestScorer
from overdrive.store.feature_config import FeatureConfig
from overdrive.store.memory_feature_store import MemoryFeatureStore
from overdrive.store.sqlite_catalog import SCHEMA as ITEMS_SCHEMA, SqliteItemCatalog
from overdrive.store.sqlite_db import SqliteDatabase
from overdrive.store.sqlite_signal_log import SCHEMA as SIGNALS_SCHEMA, SqliteSignalLog
from overdrive.stream.in_process import InProcessSignalBus, in_process_bus

pytestmark = pytest.mark.anyio

HOUR = 3600.0
W = DEFAULT_RANKING_WEIGHTS


@dataclass
class World:
    ranker: EnhancedOverdriveRankingService
    catalog: SqliteItemCatalog
    features: MemoryFeatureStore
    bus: InProcessSignalBus
    now: float

    async def add(self, *items: Item) -> None:
        await self.catalog.put(items)

    async def signal(self, user: str, content: str, stype: str = "like", n: int = 1) -> None:
        signals = [Signal(user_id=user, signal_type=stype, content_id=content, timestamp=self.now) for _ in range(n)]
        await self.bus.publish(signals)
        assert await self.bus.settled(user, timeout_s=5.0)  # others' signals apply asynchronously

    async def rank(self, user: str, ids: list[str] | None, *, limit: int = 100, strategy: str = "enhanced"):
        candidates = None if ids is None else [Candidate(id=i) for i in ids]
        return await self.ranker.rank(user_id=user, candidates=candidates, limit=limit, strategy=strategy)


@pytest.fixture
async def world(anyio_backend: str, tmp_path: Path) -> AsyncIterator[World]:
    db = SqliteDatabase(path=tmp_path / "catalog.sqlite3", schema=ITEMS_SCHEMA + SIGNALS_SCHEMA)
    catalog = SqliteItemCatalog(db)
    features = MemoryFeatureStore(
        config=FeatureConfig(
            signal_weights=DEFAULT_SIGNAL_WEIGHTS, engagement_half_life_s=24 * HOUR, interest_half_life_s=14 * 24 * HOUR
        )
    )
    bus = in_process_bus(signal_log=SqliteSignalLog(db), features=features, catalog=catalog, monitor=PerformanceMonitor(),
                         buffer_size=1000, workers=2)
    await bus.start()
    ranker = EnhancedOverdriveRankingService(
        scorers=[EngagementScorer(features), InterestScorer(), FreshnessScorer(half_life_s=48 * HOUR)],
        strategies=strategies_from_weights(DEFAULT_RANKING_WEIGHTS),
        catalog=catalog,
        features=features,
        bus=bus,
        catalog_candidates=50,
    )
    try:
        yield World(ranker=ranker, catalog=catalog, features=features, bus=bus, now=time.time())
    finally:
        await bus.close()
        await catalog.close()


def by_id(result) -> dict:
    return {r.id: r for r in result.items}


# ------------------------------------------------------------------------------ the blend


async def test_contributions_sum_to_score(world: World) -> None:
    now = world.now
    await world.add(
        Item(id="a", tags=("x",), author_id="ann", created_at=now - 1 * HOUR),
        Item(id="b", tags=("y",), author_id="bob", created_at=now - 30 * HOUR),
        Item(id="c", tags=("x", "y"), created_at=now - 90 * HOUR),
        Item(id="d", type="video"),
    )
    await world.signal("u1", "a", "like", 3)
    await world.signal("u2", "b", "share")
    await world.signal("u1", "c", "hide")
    result = await world.rank("u1", ["a", "b", "c", "d"])
    assert {name for r in result.items for name in r.scores} == {"real_time", "user_interests", "freshness"}
    for r in result.items:
        assert sum(r.scores.values()) == pytest.approx(r.score, abs=1e-12)
        assert -1.0 - 1e-9 <= r.score <= 1.0 + 1e-9


async def test_silent_components_are_left_out_and_weights_renormalised(world: World) -> None:
    now = world.now
    # No user history (user_interests silent); one engaged item; both have created_at.
    await world.add(Item(id="hot", created_at=now), Item(id="cold", created_at=now - 48 * HOUR))
    await world.signal("someone", "hot", "share", 5)
    result = await world.rank("newcomer", ["cold", "hot"])
    hot, cold = by_id(result)["hot"], by_id(result)["cold"]
    assert set(hot.scores) == {"real_time", "freshness"}
    total = W["real_time"] + W["freshness"]
    # "hot" is the most engaged candidate (real_time score 1) and brand new (freshness ≈ 1).
    assert hot.scores["real_time"] == pytest.approx(W["real_time"] / total, rel=1e-6)
    assert hot.scores["freshness"] == pytest.approx(W["freshness"] / total, rel=1e-3)
    assert hot.score == pytest.approx(1.0, rel=1e-3)
    # "cold" has no engagement (0) and is one freshness half-life old (0.5).
    assert cold.scores["real_time"] == 0.0
    assert cold.scores["freshness"] == pytest.approx(0.5 * W["freshness"] / total, rel=1e-3)


async def test_only_component_with_something_to_say_gets_all_the_weight(world: World) -> None:
    now = world.now
    await world.add(Item(id="new", created_at=now), Item(id="old", created_at=now - 96 * HOUR))
    result = await world.rank("nobody", ["old", "new"])
    assert [r.id for r in result.items] == ["new", "old"]
    assert all(set(r.scores) == {"freshness"} for r in result.items)
    assert by_id(result)["new"].score == pytest.approx(1.0, rel=1e-3)
    assert by_id(result)["old"].score == pytest.approx(0.25, rel=1e-3)


async def test_nothing_to_say_scores_zero_and_keeps_input_order(world: World) -> None:
    await world.add(Item(id="p"), Item(id="q"), Item(id="r"))
    result = await world.rank("nobody", ["q", "r", "p"])
    assert [r.id for r in result.items] == ["q", "r", "p"]
    assert all(r.score == 0.0 and r.scores == {} for r in result.items)


# ---------------------------------------------------------------------------- behaviours


async def test_likes_on_a_tag_lift_items_with_that_tag(world: World) -> None:
    created = world.now - 5 * HOUR
    await world.add(
        Item(id="seed", tags=("x",), created_at=created),
        Item(id="other-y", tags=("y",), created_at=created),
        Item(id="other-x", tags=("x",), created_at=created),
        Item(id="more-y", tags=("y",), created_at=created),
    )
    await world.signal("fan", "seed", "like", 3)
    candidates = ["other-y", "more-y", "other-x"]  # tag-x item listed last
    fan = await world.rank("fan", candidates)
    assert fan.items[0].id == "other-x"
    ranked = by_id(fan)
    assert ranked["other-x"].scores["user_interests"] > ranked["other-y"].scores["user_interests"]
    assert ranked["other-x"].score > ranked["other-y"].score
    # Someone without that history sees no lift: a tie, kept in input order.
    stranger = await world.rank("stranger", candidates)
    assert [r.id for r in stranger.items] == candidates


async def test_dislikes_on_a_tag_push_items_with_that_tag_down(world: World) -> None:
    created = world.now - 5 * HOUR
    await world.add(
        Item(id="seed", tags=("x",), created_at=created),
        Item(id="x2", tags=("x",), created_at=created),
        Item(id="y2", tags=("y",), created_at=created),
    )
    await world.signal("grump", "seed", "hide")
    result = await world.rank("grump", ["x2", "y2"])
    assert [r.id for r in result.items] == ["y2", "x2"]
    assert by_id(result)["x2"].scores["user_interests"] < 0


async def test_fresher_items_beat_older_all_else_equal(world: World) -> None:
    now = world.now
    ages = {"week": 168, "day": 24, "hour": 1, "month": 720}
    await world.add(*(Item(id=k, tags=("same",), created_at=now - h * HOUR) for k, h in ages.items()))
    result = await world.rank("nobody", list(ages))
    assert [r.id for r in result.items] == ["hour", "day", "week", "month"]


async def test_engagement_lifts_items(world: World) -> None:
    created = world.now - 2 * HOUR
    await world.add(*(Item(id=f"i{n}", created_at=created) for n in range(4)))
    await world.signal("crowd", "i2", "share", 5)
    await world.signal("crowd", "i0", "view", 1)
    result = await world.rank("nobody", ["i0", "i1", "i2", "i3"])
    assert [r.id for r in result.items][:2] == ["i2", "i0"]


async def test_single_component_strategy(world: World) -> None:
    now = world.now
    await world.add(Item(id="new", created_at=now), Item(id="popular", created_at=now - 200 * HOUR))
    await world.signal("crowd", "popular", "share", 10)
    assert [r.id for r in (await world.rank("u", ["new", "popular"], strategy="enhanced")).items][0] == "popular"
    fresh_only = await world.rank("u", ["popular", "new"], strategy="freshness")
    assert [r.id for r in fresh_only.items] == ["new", "popular"]
    assert all(set(r.scores) == {"freshness"} for r in fresh_only.items)
    assert fresh_only.strategy == "freshness"


async def test_unknown_strategy_is_invalid_input_naming_strategy(world: World) -> None:
    await world.add(Item(id="a"))
    with pytest.raises(InvalidInput) as err:
        await world.rank("u", ["a"], strategy="no-such-strategy")
    assert err.value.field == "strategy"
    assert "no-such-strategy" in str(err.value)


# ---------------------------------------------------------------------------- the response


async def test_limit_is_respected_and_keeps_the_top(world: World) -> None:
    now = world.now
    ids = [f"i{n}" for n in range(7)]
    await world.add(*(Item(id=i, created_at=now - n * 10 * HOUR) for n, i in enumerate(ids)))
    full = await world.rank("u", ids[::-1], limit=100)
    top3 = await world.rank("u", ids[::-1], limit=3)
    assert len(full.items) == 7
    assert [r.id for r in top3.items] == [r.id for r in full.items[:3]] == ["i0", "i1", "i2"]
    assert top3.candidates_considered == 7
    assert len((await world.rank("u", ids, limit=1)).items) == 1


async def test_a_big_set_keeps_the_top_and_ties_in_request_order(world: World) -> None:
    """Past a few times `limit` the ranker sorts only the head; the feed must be what a full
    stable sort gives: three ages, many items of each, the freshest first in request order."""
    now = world.now
    ids = [f"i{n}" for n in range(300)]
    await world.add(*(Item(id=i, created_at=now - (n % 3) * 10 * HOUR) for n, i in enumerate(ids)))
    shuffled = ids[1::2] + ids[::2]
    top = await world.rank("u", shuffled, limit=40)
    freshest = [i for i in shuffled if int(i[1:]) % 3 == 0]  # 100 of them, in request order
    assert [r.id for r in top.items] == freshest[:40]
    older = await world.rank("u", [i for i in shuffled if int(i[1:]) % 3 != 0], limit=30)
    assert [r.id for r in older.items] == [i for i in shuffled if int(i[1:]) % 3 == 1][:30]


async def test_ranks_are_one_to_n_in_score_order(world: World) -> None:
    now = world.now
    await world.add(*(Item(id=f"i{n}", tags=(f"t{n % 3}",), created_at=now - n * 7 * HOUR) for n in range(9)))
    await world.signal("u", "i4", "like", 2)
    await world.signal("v", "i7", "share")
    result = await world.rank("u", [f"i{n}" for n in range(9)])
    assert [r.rank for r in result.items] == list(range(1, 10))
    scores = [r.score for r in result.items]
    assert scores == sorted(scores, reverse=True)
    assert len({r.id for r in result.items}) == 9


async def test_candidates_not_in_catalog_are_still_ranked(world: World) -> None:
    await world.add(Item(id="known", created_at=world.now))
    result = await world.rank("u", ["ghost", "known"])
    assert [r.id for r in result.items] == ["known", "ghost"]
    assert by_id(result)["ghost"].score == 0.0


async def test_without_candidates_ranks_catalog_items(world: World) -> None:
    now = world.now
    await world.add(*(Item(id=f"i{n}", created_at=now - n * HOUR) for n in range(5)))
    result = await world.rank("u", None, limit=3)
    assert [r.id for r in result.items] == ["i0", "i1", "i2"]
    assert result.candidates_considered == 5
