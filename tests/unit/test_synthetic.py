"""The synthetic world is deterministic, valid on the wire, and its planted structure is visible."""

from __future__ import annotations

import collections
import dataclasses
import time

import numpy as np
import pytest

from overdrive.api.schemas import ItemIn, SignalIn
from overdrive.domain.types import SIGNAL_TYPES
from overdrive.data.synthetic import World, WorldConfig, generate_world, topic_vocabulary

END = 1_750_000_000.0
POSITIVE = {"like", "share", "bookmark", "comment", "completion"}
NEGATIVE = {"skip", "hide", "dislike", "report"}
SMALL = WorldConfig(n_users=300, n_items=1000, n_topics=8, n_days=20, signals_per_user=40, seed=7, end=END)


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(SMALL)


def _index(world: World) -> tuple[dict[str, int], dict[str, int]]:
    return {u: i for i, u in enumerate(world.user_ids)}, {it["id"]: i for i, it in enumerate(world.items)}


def _topic_share_in_top(world: World, types: set[str], top: int = 2) -> tuple[float, float]:
    """(share of `types` signals on an item whose topic is among the user's `top` topics then,
    the share expected if items were picked without regard to interests)."""
    users, items = _index(world)
    topic_freq = np.bincount(world.item_topic, minlength=world.config.n_topics) / len(world.items)
    hits, chance, n = 0, 0.0, 0
    for s in world.signals:
        if s["signal_type"] not in types:
            continue
        interest = world.interests_at(s["timestamp"])[users[s["user_id"]]]
        best = np.argsort(interest)[::-1][:top]
        hits += int(world.item_topic[items[s["content_id"]]] in best)
        chance += float(topic_freq[best].sum())
        n += 1
    return hits / n, chance / n


def test_same_seed_gives_the_same_world_and_another_seed_does_not(world: World) -> None:
    again = generate_world(SMALL)
    assert again.items == world.items
    assert again.signals == world.signals
    np.testing.assert_array_equal(again.user_topics, world.user_topics)
    np.testing.assert_array_equal(again.item_topic, world.item_topic)
    other = generate_world(dataclasses.replace(SMALL, seed=8))
    assert other.signals[:50] != world.signals[:50]
    assert not np.array_equal(other.item_topic, world.item_topic)


def test_sizes_ids_and_times(world: World) -> None:
    assert len(world.items) == 1000 and len({i["id"] for i in world.items}) == 1000
    assert world.user_topics.shape == world.user_topics_start.shape == (300, 8)
    assert abs(len(world.signals) - 300 * 40) <= 0.02 * 300 * 40
    assert len({s["signal_id"] for s in world.signals}) == len(world.signals)
    ts = np.array([s["timestamp"] for s in world.signals])
    assert np.all(np.diff(ts) >= 0), "signals are sorted by timestamp"
    assert ts.min() >= world.start and ts.max() <= END
    created = {i["id"]: i["created_at"] for i in world.items}
    assert all(s["timestamp"] >= created[s["content_id"]] for s in world.signals), "no signal before its item exists"
    assert {s["user_id"] for s in world.signals} <= set(world.user_ids)


def test_default_end_is_now_and_nothing_is_in_the_future() -> None:
    before = time.time()
    w = generate_world(WorldConfig(n_users=20, n_items=50, signals_per_user=10, n_days=2))
    assert before <= w.end <= time.time()
    assert max(s["timestamp"] for s in w.signals) <= w.end


def test_every_item_and_signal_is_valid_on_the_wire(world: World) -> None:
    for item in world.items:
        ItemIn.model_validate(item)
    for signal in world.signals:
        SignalIn.model_validate(signal)


def test_all_signal_types_at_realistic_rates(world: World) -> None:
    counts = collections.Counter(s["signal_type"] for s in world.signals)
    assert set(counts) == set(SIGNAL_TYPES)
    total = sum(counts.values())
    assert counts.most_common(1)[0][0] == "view"
    assert 0.04 <= counts["like"] / counts["view"] <= 0.12
    for common in ("scroll", "click", "dwell", "completion", "skip"):
        assert counts[common] > counts["like"] > counts["comment"], common
    for rare in ("comment", "share", "bookmark", "follow", "hide", "dislike", "report"):
        assert counts[rare] < 0.02 * total, rare
    assert counts["report"] < counts["dislike"]
    durations = [s for s in world.signals if "duration" in s]
    assert {s["signal_type"] for s in durations} == {"dwell", "completion", "skip"}


def test_positive_signals_land_on_the_users_top_topics(world: World) -> None:
    share, chance = _topic_share_in_top(world, POSITIVE)
    assert share > 0.6 and share > 2.0 * chance, (share, chance)


def test_negative_signals_land_off_the_users_interests(world: World) -> None:
    negative, _ = _topic_share_in_top(world, NEGATIVE)
    positive, _ = _topic_share_in_top(world, POSITIVE)
    assert negative < 0.5 * positive, (negative, positive)


def test_dwell_is_longer_on_interesting_items(world: World) -> None:
    users, items = _index(world)
    on, off = [], []
    for s in world.signals:
        if s["signal_type"] != "dwell":
            continue
        interest = world.interests_at(s["timestamp"])[users[s["user_id"]]]
        rank = int(np.argsort(interest)[::-1].tolist().index(world.item_topic[items[s["content_id"]]]))
        (on if rank == 0 else off if rank >= 3 else []).append(s["duration"])
    assert np.median(on) > 2.5 * np.median(off), (np.median(on), np.median(off))


def _views_top_decile_share(w: World) -> float:
    views = collections.Counter(s["content_id"] for s in w.signals if s["signal_type"] == "view")
    counts = np.array(sorted((views.get(i["id"], 0) for i in w.items), reverse=True))
    return counts[: len(counts) // 10].sum() / counts.sum()


def test_popularity_is_heavy_tailed(world: World) -> None:
    flat = generate_world(dataclasses.replace(SMALL, zipf_exponent=0.0))
    heavy, uniform = _views_top_decile_share(world), _views_top_decile_share(flat)
    assert heavy > 0.45 and heavy > uniform + 0.2, (heavy, uniform)


def _early_late_distance(w: World) -> float:
    """Mean total-variation distance between each user's topic mix of positive signals in the
    first and last third of the period (users with enough signals in both)."""
    users, items = _index(w)
    k = w.config.n_topics
    span = w.end - w.start
    early = np.zeros((len(users), k))
    late = np.zeros((len(users), k))
    for s in w.signals:
        if s["signal_type"] in NEGATIVE or s["signal_type"] == "view":
            continue
        f = (s["timestamp"] - w.start) / span
        target = early if f < 1 / 3 else late if f > 2 / 3 else None
        if target is not None:
            target[users[s["user_id"]], w.item_topic[items[s["content_id"]]]] += 1
    ok = (early.sum(axis=1) >= 15) & (late.sum(axis=1) >= 15)
    assert ok.sum() >= 30
    e = early[ok] / early[ok].sum(axis=1, keepdims=True)
    lt = late[ok] / late[ok].sum(axis=1, keepdims=True)
    return float(0.5 * np.abs(e - lt).sum(axis=1).mean())


def test_interests_drift_over_the_period() -> None:
    base = dict(n_users=300, n_items=1000, n_days=20, signals_per_user=60, seed=3, end=END)
    drifting = generate_world(WorldConfig(**base, drift=0.9))
    steady = generate_world(WorldConfig(**base, drift=0.0))
    np.testing.assert_allclose(steady.user_topics, steady.user_topics_start)
    moved, still = _early_late_distance(drifting), _early_late_distance(steady)
    assert moved > still + 0.15, (moved, still)


def test_text_tags_and_authors_follow_the_items_topic(world: World) -> None:
    names, words, tags = topic_vocabulary(world.config.n_topics)
    assert tuple(names) == world.topic_names
    word_topic = {w: t for t, row in enumerate(words.tolist()) for w in row}
    tag_topic = {g: t for t, ts in enumerate(tags) for g in ts}
    agree_text = agree_tag = agree_author = 0
    for i, item in enumerate(world.items):
        topics = [word_topic[w] for w in item["text"].lower().replace(".", "").split() if w in word_topic]
        agree_text += collections.Counter(topics).most_common(1)[0][0] == world.item_topic[i]
        agree_tag += tag_topic[item["tags"][0]] == world.item_topic[i]
        agree_author += world.author_topic[item["author_id"]] == world.item_topic[i]
    n = len(world.items)
    assert agree_text > 0.95 * n and agree_tag == n and agree_author > 0.85 * n
    kinds = collections.Counter(i["type"] for i in world.items)
    assert set(kinds) == {"text", "image", "video", "audio", "mixed"}
    assert kinds["text"] > kinds["audio"] and kinds["video"] > kinds["mixed"]


@pytest.mark.parametrize("n_topics", [8, 15])
def test_topic_vocabularies_are_disjoint(n_topics: int) -> None:
    names, words, tags = topic_vocabulary(n_topics, seed=1)
    assert len(set(names)) == n_topics and words.shape == (n_topics, 30)
    per_topic = [set(row) | set(t) for row, t in zip(words.tolist(), tags)]
    for a in range(n_topics):
        for b in range(a + 1, n_topics):
            assert not per_topic[a] & per_topic[b], (names[a], names[b])


def test_more_topics_than_shipped_still_make_a_valid_world() -> None:
    w = generate_world(WorldConfig(n_users=40, n_items=200, n_topics=15, signals_per_user=10, seed=2, end=END))
    assert w.topic_names[-1] == "topic14"
    assert set(np.unique(w.item_topic)) == set(range(15))
    for item in w.items[:50]:
        ItemIn.model_validate(item)


@pytest.mark.parametrize(
    "bad",
    [dict(n_items=3, n_topics=8), dict(drift=1.5), dict(signals_per_user=0), dict(n_days=-1), dict(exploration=-0.1)],
)
def test_bad_configs_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        WorldConfig(**bad)


# ------------------------------------------------------------------------------- context


def _topic_mix_by_device(world: World) -> np.ndarray:
    """(devices, topics) share of each device's positive signals on each topic."""
    _, items = _index(world)
    devices = sorted({s["metadata"]["device_info"]["device_class"] for s in world.signals})
    counts = np.zeros((len(devices), world.config.n_topics))
    for s in world.signals:
        if s["signal_type"] in POSITIVE:
            counts[devices.index(s["metadata"]["device_info"]["device_class"]), world.item_topic[items[s["content_id"]]]] += 1
    return counts / counts.sum(axis=1, keepdims=True)


def test_context_adds_devices_places_and_zoned_times_to_the_same_world(world: World) -> None:
    with_context = generate_world(dataclasses.replace(SMALL, context=True))
    assert with_context.items == world.items
    assert [(s["user_id"], s["signal_type"], s["content_id"]) for s in with_context.signals] == \
        [(s["user_id"], s["signal_type"], s["content_id"]) for s in world.signals]
    offsets = dict(zip(with_context.user_ids, with_context.user_utc_offset.tolist(), strict=True))
    now = time.time()
    for wire, plain in zip(with_context.signals[:500], world.signals[:500], strict=True):
        signal = SignalIn.model_validate(wire).to_domain(now)
        assert signal.timestamp == pytest.approx(plain["timestamp"], abs=1e-3)
        context = signal.metadata["context"]
        assert context["utc_offset_minutes"] == offsets[wire["user_id"]]
        assert context["device_class"] in {"mobile", "desktop", "tv"} and len(context["country"]) == 2
    with pytest.raises(ValueError, match="context_effect"):
        WorldConfig(context_effect=1.0)


def test_planted_context_effects_make_taste_depend_on_the_device() -> None:
    base = dict(n_users=300, n_items=1000, n_days=20, signals_per_user=60, seed=3, end=END, context=True)
    planted = _topic_mix_by_device(generate_world(WorldConfig(**base, context_effect=1.5)))
    noise = _topic_mix_by_device(generate_world(WorldConfig(**base)))
    spread = lambda mix: float(0.5 * np.abs(mix - mix.mean(axis=0)).sum(axis=1).mean())  # noqa: E731
    assert spread(planted) > 2 * spread(noise), (spread(planted), spread(noise))
