"""FeatureStore contract: every backend must behave exactly like this.

The backend comes from the `feature_store` fixture (tests/contract/conftest.py), configured with
the spec's signal weights (view 1, like 2, share 4, hide -3, skip -0.5, …), the half-lives in
`feature_config` and view, hide and report as the types that take an item out of a feed. Every read passes an explicit `now`, so nothing depends on the clock.
"""

from __future__ import annotations

import pytest

from overdrive.domain.types import Item, Signal
from overdrive.store.protocols import FeatureStore

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0

CATS = Item(id="cats", type="video", author_id="ann", tags=("Cats", "pets"), created_at=T0)
DOGS = Item(id="dogs", type="image", author_id="bob", tags=("dogs", "pets"), created_at=T0)
ITEMS = {i.id: i for i in (CATS, DOGS)}


def sig(content: str, stype: str = "like", *, at: float = T0, user: str = "u1", **extra) -> Signal:
    return Signal(user_id=user, signal_type=stype, content_id=content, timestamp=at, **extra)


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-9, abs=1e-12)


def approx_dict(d: dict[str, float]) -> object:
    return pytest.approx(d, rel=1e-9, abs=1e-12)


# ------------------------------------------------------------------------------- engagement


async def test_nothing_recorded(feature_store: FeatureStore) -> None:
    assert await feature_store.item_engagement(["cats"], now=T0) == {}
    assert await feature_store.item_engagement([], now=T0) == {}
    assert await feature_store.user_interests("u1", now=T0) == {}
    assert await feature_store.top_engaged(10, now=T0) == []


async def test_engagement_is_the_weighted_sum(feature_store: FeatureStore) -> None:
    await feature_store.apply([sig("cats", "like"), sig("cats", "view", user="u2"), sig("dogs", "share")], ITEMS, now=T0)
    eng = await feature_store.item_engagement(["cats", "dogs", "never"], now=T0)
    assert eng == {"cats": approx(3.0), "dogs": approx(4.0)}


async def test_engagement_grows_with_positive_and_shrinks_with_negative(feature_store: FeatureStore) -> None:
    await feature_store.apply([sig("cats", "like")], ITEMS, now=T0)
    one = (await feature_store.item_engagement(["cats"], now=T0))["cats"]
    await feature_store.apply([sig("cats", "share", user="u2")], ITEMS, now=T0)
    two = (await feature_store.item_engagement(["cats"], now=T0))["cats"]
    assert two > one > 0
    await feature_store.apply([sig("cats", "hide", user="u3")], ITEMS, now=T0)
    three = (await feature_store.item_engagement(["cats"], now=T0))["cats"]
    assert three < two
    assert three == approx(2.0 + 4.0 - 3.0)
    await feature_store.apply([sig("cats", "hide", user="u4"), sig("cats", "skip", user="u5")], ITEMS, now=T0)
    assert (await feature_store.item_engagement(["cats"], now=T0))["cats"] == approx(3.0 - 3.0 - 0.5)


async def test_intensity_scales_strength(feature_store: FeatureStore) -> None:
    await feature_store.apply([sig("cats", "like", intensity=0.25)], ITEMS, now=T0)
    assert await feature_store.item_engagement(["cats"], now=T0) == {"cats": approx(0.5)}


async def test_engagement_halves_after_one_half_life(feature_store: FeatureStore, feature_config) -> None:
    hl = feature_config.engagement_half_life_s
    await feature_store.apply([sig("cats", "share")], ITEMS, now=T0)
    assert (await feature_store.item_engagement(["cats"], now=T0 + hl))["cats"] == approx(2.0)
    assert (await feature_store.item_engagement(["cats"], now=T0 + 3 * hl))["cats"] == approx(0.5)
    # Reading does not consume: an earlier `now` still sees the full value.
    assert (await feature_store.item_engagement(["cats"], now=T0))["cats"] == approx(4.0)


async def test_engagement_decay_accounts_for_each_signal_time(feature_store: FeatureStore, feature_config) -> None:
    hl = feature_config.engagement_half_life_s
    # Recorded out of order (a backfill arrives after a newer signal).
    await feature_store.apply([sig("cats", "share", at=T0 + hl)], ITEMS, now=T0)
    await feature_store.apply([sig("cats", "share", at=T0)], ITEMS, now=T0)
    assert (await feature_store.item_engagement(["cats"], now=T0 + 2 * hl))["cats"] == approx(4.0 / 2 + 4.0 / 4)


# -------------------------------------------------------------------------------- interests


async def test_user_interests_are_keyed_by_item_features(feature_store: FeatureStore) -> None:
    await feature_store.apply([sig("cats", "like")], ITEMS, now=T0)
    assert await feature_store.user_interests("u1", now=T0) == {
        "tag:cats": approx(2.0),
        "tag:pets": approx(2.0),
        "author:ann": approx(2.0),
        "type:video": approx(2.0),
    }
    assert await feature_store.user_interests("u2", now=T0) == {}


async def test_user_interests_accumulate_and_go_negative(feature_store: FeatureStore) -> None:
    await feature_store.apply([sig("cats", "like"), sig("dogs", "hide")], ITEMS, now=T0)
    got = await feature_store.user_interests("u1", now=T0)
    assert got == {
        "tag:cats": approx(2.0),
        "author:ann": approx(2.0),
        "type:video": approx(2.0),
        "tag:pets": approx(2.0 - 3.0),
        "tag:dogs": approx(-3.0),
        "author:bob": approx(-3.0),
        "type:image": approx(-3.0),
    }


async def test_user_interests_ignore_unknown_items(feature_store: FeatureStore) -> None:
    await feature_store.apply([sig("ghost", "share"), sig("cats", "view")], ITEMS, now=T0)
    got = await feature_store.user_interests("u1", now=T0)
    assert set(got) == {"tag:cats", "tag:pets", "author:ann", "type:video"}
    assert all(v == approx(1.0) for v in got.values())


async def test_unknown_items_still_count_for_engagement(feature_store: FeatureStore) -> None:
    await feature_store.apply([sig("ghost", "share"), sig("ghost", "like", user="u2")], {}, now=T0)
    assert await feature_store.item_engagement(["ghost"], now=T0) == {"ghost": approx(6.0)}
    assert await feature_store.top_engaged(5, now=T0) == ["ghost"]
    assert await feature_store.user_interests("u1", now=T0) == {}


async def test_user_interests_decay_with_their_own_half_life(feature_store: FeatureStore, feature_config) -> None:
    hl = feature_config.interest_half_life_s
    await feature_store.apply([sig("cats", "share")], ITEMS, now=T0)
    got = await feature_store.user_interests("u1", now=T0 + hl)
    assert got["tag:cats"] == approx(2.0)
    # Engagement fades on its own (much shorter) half-life.
    eng_hl = feature_config.engagement_half_life_s
    assert (await feature_store.item_engagement(["cats"], now=T0 + hl))["cats"] == approx(4.0 * 2 ** (-hl / eng_hl))


async def test_user_interests_combine_signals_at_different_times(feature_store: FeatureStore, feature_config) -> None:
    hl = feature_config.interest_half_life_s
    await feature_store.apply([sig("cats", "like", at=T0 + hl)], ITEMS, now=T0)
    await feature_store.apply([sig("cats", "share", at=T0)], ITEMS, now=T0)  # older, arrives later
    got = await feature_store.user_interests("u1", now=T0 + 2 * hl)
    assert got["tag:cats"] == approx(4.0 / 4 + 2.0 / 2)


# ------------------------------------------------------------------------------ top_engaged


async def test_top_engaged_best_first_with_limit(feature_store: FeatureStore) -> None:
    signals = (
        [sig("a", "share"), sig("a", "follow")]  # 9
        + [sig("b", "share")]  # 4
        + [sig("c", "like")]  # 2
        + [sig("d", "view")]  # 1
        + [sig("neg", "like"), sig("neg", "report")]  # -3
    )
    await feature_store.apply(signals, {}, now=T0)
    top = await feature_store.top_engaged(10, now=T0)
    assert top[:4] == ["a", "b", "c", "d"]
    assert set(top) <= {"a", "b", "c", "d", "neg"}
    assert await feature_store.top_engaged(2, now=T0 + 1) == ["a", "b"]


async def test_top_engaged_ranks_by_decayed_value(feature_store: FeatureStore, feature_config) -> None:
    hl = feature_config.engagement_half_life_s
    # "old" was big long ago (4 → 1 after two half-lives); "new" is smaller but recent (3 → 1.5).
    await feature_store.apply([sig("old", "share", at=T0 - hl)], {}, now=T0)
    await feature_store.apply([sig("new", "comment", at=T0 + hl)], {}, now=T0)
    assert await feature_store.top_engaged(2, now=T0 + 2 * hl) == ["new", "old"]


async def test_forget_item(feature_store: FeatureStore) -> None:
    await feature_store.apply([sig("cats", "share"), sig("dogs", "like")], ITEMS, now=T0)
    before = await feature_store.user_interests("u1", now=T0)
    assert await feature_store.top_engaged(5, now=T0) == ["cats", "dogs"]
    await feature_store.forget_item("cats")
    await feature_store.forget_item("never-recorded")
    assert await feature_store.item_engagement(["cats", "dogs"], now=T0) == {"dogs": approx(2.0)}
    assert await feature_store.top_engaged(5, now=T0) == ["dogs"]
    # Interests are about features, not the item: they stay.
    assert await feature_store.user_interests("u1", now=T0) == before


async def test_forget_user_drops_everything_about_them_and_their_markers(feature_store: FeatureStore) -> None:
    """GDPR erasure: no state of the user is left, and their signal ids apply again (markers gone)."""
    theirs = [sig("cats", "share", signal_id="e1"), sig("dogs", "view", signal_id="e2", at=T0 + 1)]
    others = [sig("cats", "like", user="u2", signal_id="k1")]
    await feature_store.apply(theirs + others, ITEMS, now=T0 + 2)
    await feature_store.forget_user("u1", theirs, ITEMS)
    activity = await feature_store.user_activity("u1", now=T0 + 2)
    assert activity.signal_counts == {} and activity.recent == [] and activity.session is None
    assert await feature_store.user_interests("u1", now=T0 + 2) == {}
    assert await feature_store.user_interests("u1", now=T0 + 2, term="short") == {}
    assert await feature_store.user_signal_total("u1") == 0
    assert await feature_store.excluded_items("u1", ["cats", "dogs"]) == set()
    assert (await feature_store.windows("user", "u1", now=T0 + 2))["1h"]["count"] == 0
    assert (await feature_store.user_activity("u2", now=T0 + 2)).signal_counts == {"like": 1}  # others untouched
    # The same ids are a new user's now: they apply (a redelivery of erased signals is not a repeat).
    assert len(await feature_store.apply(theirs, ITEMS, now=T0 + 3)) == 2
    await feature_store.forget_user("nobody", [], {})


# ------------------------------------------------------------------------------ de-duplication


async def test_redelivered_signal_ids_change_nothing(feature_store: FeatureStore) -> None:
    first = [sig("cats", "like", signal_id="a"), sig("cats", "share", user="u2", signal_id="b")]
    assert await feature_store.apply(first, ITEMS, now=T0) == first
    again = [sig("cats", "like", signal_id="a"), sig("dogs", "like", signal_id="c"), sig("dogs", "like", signal_id="c")]
    applied = await feature_store.apply(again, ITEMS, now=T0)
    assert [s.signal_id for s in applied] == ["c"]
    assert (await feature_store.item_engagement(["cats", "dogs"], now=T0)) == {"cats": approx(6.0), "dogs": approx(2.0)}
    activity = await feature_store.user_activity("u1", now=T0)
    assert activity.signal_counts == {"like": 2}
    assert await feature_store.user_signal_total("u1") == 2  # the redelivered "a" counts once


async def test_signals_without_ids_always_apply(feature_store: FeatureStore) -> None:
    same = sig("cats", "view")
    assert len(await feature_store.apply([same, same], ITEMS, now=T0)) == 2
    assert (await feature_store.user_activity("u1", now=T0)).signal_counts == {"view": 2}


# ------------------------------------------------------------------------------------ windows


async def test_windows_count_per_item_author_and_user(feature_store: FeatureStore) -> None:
    now = T0 + 86_400
    await feature_store.apply(
        [
            sig("cats", "like", at=now - 30),  # in every window
            sig("cats", "view", at=now - 200, user="u2"),  # 5m and up
            sig("cats", "view", at=now - 2 * 3600),  # 24h only
            sig("cats", "view", at=now - 3 * 86_400),  # too old for any window
            sig("dogs", "share", at=now - 10),
        ],
        ITEMS,
        now=now,
    )
    cats = await feature_store.windows("item", "cats", now=now)
    assert [cats[w]["count"] for w in ("1m", "5m", "15m", "1h", "24h")] == [1, 2, 2, 2, 3]
    assert cats["1m"]["weight"] == approx(2.0) and cats["24h"]["weight"] == approx(4.0)
    ann = await feature_store.windows("author", "ann", now=now)
    assert ann["24h"]["count"] == 3
    u1 = await feature_store.windows("user", "u1", now=now)
    assert [u1[w]["count"] for w in ("1m", "1h", "24h")] == [2, 2, 3]
    empty = await feature_store.windows("item", "never", now=now)
    assert all(v["count"] == 0 for v in empty.values())


async def test_windows_slide_with_now(feature_store: FeatureStore) -> None:
    await feature_store.apply([sig("cats", "like", at=T0)], ITEMS, now=T0)
    assert (await feature_store.windows("item", "cats", now=T0 + 30))["1m"]["count"] == 1
    later = await feature_store.windows("item", "cats", now=T0 + 120)
    assert later["1m"]["count"] == 0 and later["5m"]["count"] == 1
    assert (await feature_store.windows("item", "cats", now=T0 + 2 * 86_400))["24h"]["count"] == 0


async def test_velocity_and_trending_favour_a_burst_over_a_steady_item(feature_store: FeatureStore) -> None:
    now = T0 + 86_400
    steady = [sig("dogs", "view", at=now - h * 3600 - 60, user=f"s{h}") for h in range(1, 24)]
    burst = [sig("cats", "view", at=now - 60 - i, user=f"b{i}") for i in range(10)]
    await feature_store.apply([*steady, sig("dogs", "view", at=now - 60, user="s0"), *burst], ITEMS, now=now)
    vel = await feature_store.item_velocity(["cats", "dogs", "never"], now=now)
    assert set(vel) <= {"cats", "dogs"} and vel["cats"] > vel.get("dogs", 1.0)
    trending = await feature_store.trending(5, now=now)
    assert [i for i, _ in trending] == ["cats", "dogs"]
    assert trending[0][1] == approx(vel["cats"])


# ------------------------------------------------------------------------- profiles & activity


async def test_short_term_interests_fade_faster_than_long_term(feature_store: FeatureStore, feature_config) -> None:
    await feature_store.apply([sig("cats", "like", at=T0)], ITEMS, now=T0)
    short_now = await feature_store.user_interests("u1", now=T0, term="short")
    assert short_now["tag:cats"] == approx(2.0)
    later = T0 + feature_config.short_term_half_life_s
    assert (await feature_store.user_interests("u1", now=later, term="short"))["tag:cats"] == approx(1.0)
    assert (await feature_store.user_interests("u1", now=later))["tag:cats"] > 1.9


async def test_user_activity_counts_recent_and_sessions(feature_store: FeatureStore, feature_config) -> None:
    gap = feature_config.session_gap_s
    signals = [
        sig("cats", "view", at=T0),
        sig("cats", "like", at=T0 + 10),
        sig("dogs", "view", at=T0 + 20),
        sig("dogs", "skip", at=T0 + gap + 100),  # a new session
        sig("cats", "view", at=T0 + gap + 110),
        sig("dogs", "view", at=T0 + gap + 120),
    ]
    await feature_store.apply(signals, ITEMS, now=T0 + gap + 200)
    activity = await feature_store.user_activity("u1", now=T0 + gap + 200)
    assert activity.signal_counts == {"view": 4, "like": 1, "skip": 1}
    assert activity.sessions_total == 2
    assert activity.session is not None
    assert (activity.session.started_at, activity.session.last_signal_at, activity.session.signals) == (
        T0 + gap + 100, T0 + gap + 120, 3,
    )
    recent = activity.recent
    assert len(recent) == feature_config.recent_per_user == 5
    assert [s.timestamp for s in recent] == sorted((s.timestamp for s in signals), reverse=True)[:5]
    assert await feature_store.user_signal_total("u1") == 6
    nobody = await feature_store.user_activity("nobody", now=T0)
    assert (nobody.signal_counts, nobody.recent, nobody.session, nobody.sessions_total) == ({}, [], None, 0)
    assert await feature_store.user_signal_total("nobody") == 0


async def test_backfilled_signals_keep_recent_in_time_order(feature_store: FeatureStore) -> None:
    await feature_store.apply([sig("cats", "view", at=T0 + 100), sig("dogs", "view", at=T0 + 300)], ITEMS, now=T0 + 400)
    await feature_store.apply([sig("cats", "like", at=T0 + 200)], ITEMS, now=T0 + 400)
    recent = (await feature_store.user_activity("u1", now=T0 + 400)).recent
    assert [s.timestamp for s in recent] == [T0 + 300, T0 + 200, T0 + 100]


# ------------------------------------------------------------------------------ feed exclusion


async def test_excluded_items_are_per_user_and_per_configured_type(feature_store: FeatureStore) -> None:
    assert await feature_store.excluded_items("u1", ["cats", "dogs"]) == set()
    await feature_store.apply([sig("cats", "view"), sig("dogs", "like"), sig("dogs", "hide", user="u2"),
                               sig("birds", "report")], ITEMS, now=T0)
    assert await feature_store.excluded_items("u1", ["cats", "dogs", "birds", "fish"]) == {"cats", "birds"}
    assert await feature_store.excluded_items("u2", ["cats", "dogs"]) == {"dogs"}
    assert await feature_store.excluded_items("u1", []) == set()
    assert await feature_store.excluded_items("nobody", ["cats"]) == set()


# ------------------------------------------------------------------------------ one ranking's reads


async def test_ranking_reads_are_the_single_reads_together(feature_store: FeatureStore) -> None:
    await feature_store.apply([sig("cats", "view", at=T0 - 50), sig("dogs", "like", at=T0 - 40),
                               sig("cats", "share", at=T0 - 30, user="u2"), sig("birds", "hide", at=T0 - 20)],
                              ITEMS, now=T0)
    ids = ["cats", "dogs", "birds", "fish", "cats"]  # an unknown id and a repeat are fine
    reads = await feature_store.ranking_reads("u1", ids, now=T0 + 600)
    assert reads.excluded == await feature_store.excluded_items("u1", ids) == {"cats", "birds"}
    assert reads.engagement == await feature_store.item_engagement(ids, now=T0 + 600)
    assert set(reads.engagement) == {"cats", "dogs", "birds"}
    assert reads.long_interests == await feature_store.user_interests("u1", now=T0 + 600)
    assert reads.short_interests == await feature_store.user_interests("u1", now=T0 + 600, term="short")
    assert reads.short_interests and reads.short_interests != reads.long_interests  # decayed at another rate
    assert reads.signal_total == await feature_store.user_signal_total("u1") == 3
    nobody = await feature_store.ranking_reads("nobody", [], now=T0)
    assert (nobody.excluded, nobody.engagement, nobody.long_interests, nobody.short_interests, nobody.signal_total) == (
        set(), {}, {}, {}, 0)


# -------------------------------------------------------------------------- the user model


def _ctx(**fields) -> dict:
    return {"context": fields}


async def test_the_user_model_learns_habits_contexts_and_weeks(feature_store: FeatureStore) -> None:
    # T0 is 2023-11-14 22:13 UTC, a Tuesday: at +09:00 it is Wednesday 07:13 (morning) in Tokyo.
    morning_phone = _ctx(device_class="mobile", timezone="Asia/Tokyo", country="JP", city="Tokyo")
    evening_tv = _ctx(device_class="tv", utc_offset_minutes=540)
    signals = [
        sig("cats", "like", metadata=morning_phone),
        sig("cats", "share", at=T0 + 60, metadata=morning_phone),
        sig("dogs", "like", at=T0 + 12 * 3600, metadata=evening_tv),  # 19:13 local
        sig("dogs", "view", at=T0 + 8 * 86_400),  # next week, no context
    ]
    await feature_store.apply(signals, ITEMS, now=T0 + 8 * 86_400)
    model = await feature_store.user_model("u1", now=T0 + 8 * 86_400)
    assert set(model.devices) == {"mobile", "tv"} and model.devices["mobile"] > model.devices["tv"] * 1.5
    assert set(model.timezones) == {"Asia/Tokyo", "+540"}
    assert set(model.hours) == {"2:7", "2:19"}  # weekday 2 (Wednesday) at 7 and at 19, local
    assert set(model.locations) == {"JP", "JP/Tokyo"}
    assert set(model.contexts) == {"mobile|morning", "tv|evening", "mobile|*", "tv|*"}  # per context, per device all day
    assert model.contexts["mobile|*"] == approx_dict(model.contexts["mobile|morning"])
    assert set(model.contexts["mobile|morning"]) == set(CATS.features())
    assert model.contexts["mobile|morning"]["tag:cats"] > 0
    assert list(model.weeks) == ["2023-W46", "2023-W47"]
    assert model.weeks["2023-W46"]["tag:pets"] == approx(2.0 + 4.0 + 2.0)
    assert model.weeks["2023-W47"]["tag:dogs"] == approx(1.0)
    assert set(model.medium_interests) >= set(CATS.features()) | set(DOGS.features())
    assert await feature_store.user_interests("u1", now=T0, term="medium")


async def test_ranking_reads_carry_the_users_context_and_the_prior_everyones(feature_store: FeatureStore) -> None:
    morning = _ctx(device_class="mobile", utc_offset_minutes=540)
    await feature_store.apply([sig("cats", "like", metadata=morning),
                               sig("dogs", "share", user="u2", metadata=morning)], ITEMS, now=T0)
    mine = await feature_store.ranking_reads("u1", ["cats", "dogs"], now=T0, context="mobile|morning")
    assert mine.context_interests == {f: approx(2.0) for f in CATS.features()}
    assert mine.device_interests == mine.context_interests  # on mobile at any hour: the same one signal
    assert (await feature_store.ranking_reads("u1", [], now=T0, context="mobile|night")).device_interests == mine.device_interests
    assert (await feature_store.ranking_reads("u1", [], now=T0, context="-|morning")).device_interests == {}
    prior, baseline = await feature_store.context_prior("mobile|morning", now=T0)
    assert prior["tag:pets"] == approx(6.0) and prior["tag:dogs"] == approx(4.0)
    assert baseline == prior  # every signal was in that context
    await feature_store.apply([sig("dogs", "like", user="u2", signal_id="tv",
                                   metadata=_ctx(device_class="tv", utc_offset_minutes=540))], ITEMS, now=T0)
    elsewhere, everywhere = await feature_store.context_prior("tv|morning", now=T0)
    assert set(elsewhere) == set(DOGS.features()) and everywhere["tag:dogs"] == approx(6.0)
    assert await feature_store.context_prior("tablet|night", now=T0) == ({}, everywhere)
    plain = await feature_store.ranking_reads("u1", ["cats"], now=T0)
    assert plain.context_interests == {}
    await feature_store.forget_user("u1", [], ITEMS)
    gone = await feature_store.user_model("u1", now=T0)
    assert gone.devices == {} and gone.contexts == {} and gone.weeks == {} and gone.medium_interests == {}
    after = await feature_store.ranking_reads("u1", ["cats"], now=T0, context="mobile|morning")
    assert after.context_interests == {}
    assert (await feature_store.context_prior("mobile|morning", now=T0))[0]["tag:pets"] == approx(6.0)  # everyone's
