"""Assignment: deterministic, split by share, layers exclusive inside and overlapping across,
exposure raised without moving anyone, a holdout that sees nothing."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from overdrive.domain.errors import Conflict, InvalidInput
from overdrive.experiments.assignment import allocate, arm_of, assignments, bucket, exposed, in_holdout
from overdrive.experiments.model import BUCKETS, Arm, Experiment, validate

USERS = [f"user-{n}" for n in range(20_000)]
COMPONENTS = {"content_based", "collaborative", "real_time", "user_interests", "freshness"}


def _exp(exp_id: str, *, layer: str = "feed", exposure: float = 0.5, shares=(1, 1), taken=(), **kw) -> Experiment:
    arms = tuple(Arm(name=f"a{n}", share=s, strategy="enhanced") for n, s in enumerate(shares))
    e = Experiment(id=exp_id, name=exp_id, kind="ab", arms=arms, layer=layer, salt=f"salt-{exp_id}",
                   exposure=exposure, state="running", **kw)
    e = validate(e, strategies={"enhanced"}, components=COMPONENTS)
    return replace(e, buckets=allocate(exposure, (), taken))


def test_the_same_user_gets_the_same_arm_everywhere() -> None:
    e = _exp("x")
    assert [arm_of(e, u).name for u in USERS[:500]] == [arm_of(e, u).name for u in USERS[:500]]
    # a pinned value: any change to the hash would silently re-shuffle every running experiment
    assert bucket("layer:feed", "user-1") == bucket("layer:feed", "user-1") == 4152
    tenths = Counter(bucket("layer:feed", u) * 10 // BUCKETS for u in USERS)
    assert all(abs(n / len(USERS) - 0.1) < 0.01 for n in tenths.values())


def test_shares_and_exposure_are_honoured() -> None:
    e = _exp("x", exposure=0.3, shares=(1, 3))
    inside = [u for u in USERS if exposed(e, u)]
    assert abs(len(inside) / len(USERS) - 0.3) < 0.015
    counts = Counter(arm_of(e, u).name for u in inside)
    assert abs(counts["a1"] / len(inside) - 0.75) < 0.02


def test_one_layer_never_shares_a_user_and_layers_overlap() -> None:
    first = _exp("first", exposure=0.5)
    second = _exp("second", exposure=0.5, taken=first.buckets)
    other_layer = _exp("other", layer="search", exposure=0.5)
    both = [u for u in USERS if exposed(first, u) and exposed(second, u)]
    assert both == []
    assert sum(exposed(first, u) or exposed(second, u) for u in USERS) == len(USERS)
    across = sum(exposed(first, u) and exposed(other_layer, u) for u in USERS)
    assert abs(across / len(USERS) - 0.25) < 0.02  # independent layers: about half of half
    with pytest.raises(Conflict, match="room"):  # 409: the layer's other experiments hold it
        allocate(0.1, (), [*first.buckets, *second.buckets])


def test_raising_exposure_brings_users_in_and_moves_nobody() -> None:
    small = _exp("grow", exposure=0.2)
    before = {u: arm_of(small, u).name for u in USERS if exposed(small, u)}
    grown = replace(small, exposure=0.6, buckets=allocate(0.6, small.buckets, ()))
    after = {u: arm_of(grown, u).name for u in USERS if exposed(grown, u)}
    assert set(before) < set(after) and all(after[u] == arm for u, arm in before.items())
    with pytest.raises(Conflict, match="shrink"):
        allocate(0.1, grown.buckets, ())


def test_holdout_and_schedule() -> None:
    e = _exp("x", exposure=1.0, starts_at=100.0, ends_at=200.0)
    held = [u for u in USERS if in_holdout(u, 0.1)]
    assert abs(len(held) / len(USERS) - 0.1) < 0.01
    assert assignments([e], held[0], now=150.0, holdout=0.1) == []
    free = next(u for u in USERS if not in_holdout(u, 0.1))
    assert [a.name for _, a in assignments([e], free, now=150.0, holdout=0.1)] == [arm_of(e, free).name]
    assert assignments([e], free, now=99.0) == [] and assignments([e], free, now=200.0) == []
    assert assignments([replace(e, state="stopped")], free, now=150.0) == []


def test_definitions_are_validated_with_the_field_named() -> None:
    base = Experiment(id="v", name="v", kind="ab", arms=(Arm("c", 1, strategy="enhanced"), Arm("t", 1, weights={"freshness": 1.0})))
    ok = validate(base, strategies={"enhanced"}, components=COMPONENTS)
    assert [a.share for a in ok.arms] == [0.5, 0.5]
    bad = {
        "kind": replace(base, kind="bandit"),
        "arms": replace(base, arms=base.arms[:1]),
        "arms[1]": replace(base, arms=(base.arms[0], Arm("t", 1))),
        "arms[0].strategy": replace(base, arms=(Arm("c", 1, strategy="nope"), base.arms[1])),
        "arms[1].weights": replace(base, arms=(base.arms[0], Arm("t", 1, weights={"gravity": 1.0}))),
        "exposure": replace(base, exposure=0.0),
        "ends_at": replace(base, starts_at=10.0, ends_at=5.0),
    }
    for field_name, experiment in bad.items():
        with pytest.raises(InvalidInput) as refused:
            validate(experiment, strategies={"enhanced"}, components=COMPONENTS)
        assert refused.value.field == field_name
    assert BUCKETS == 10_000
