"""Who sees which arm: deterministic hashing, identical on every replica and after every restart.

A user's place in a layer is `bucket("layer:<layer>", user)` out of 10,000; an experiment owns
some bucket ranges of its layer, disjoint from every other live experiment of that layer, so
experiments in one layer never share a user while experiments in different layers overlap
freely. Within an experiment the arm comes from a second hash, of the experiment's salt and the
user, against the arms' cumulative shares — independent of the buckets, so raising exposure (more
buckets) brings new users in and never moves one already in. A global holdout (a share of all
users, by its own hash) sees no experiment at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from overdrive.domain.errors import Conflict
from overdrive.experiments.model import BUCKETS, Arm, Experiment

_ARM_RESOLUTION = 1_000_000


def bucket(salt: str, user_id: str, n: int = BUCKETS) -> int:
    digest = hashlib.sha256(f"{salt}\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n


def in_holdout(user_id: str, share: float) -> bool:
    return share > 0 and bucket("holdout", user_id) < share * BUCKETS


def exposed(experiment: Experiment, user_id: str) -> bool:
    b = bucket(f"layer:{experiment.layer}", user_id)
    return any(lo <= b < hi for lo, hi in experiment.buckets)


def arm_of(experiment: Experiment, user_id: str) -> Arm:
    """The user's arm, were they exposed (by the experiment's salt and the arms' shares)."""
    point = bucket(f"arm:{experiment.salt}", user_id, _ARM_RESOLUTION) / _ARM_RESOLUTION
    cumulative = 0.0
    for arm in experiment.arms:
        cumulative += arm.share
        if point < cumulative:
            return arm
    return experiment.arms[-1]


def assignments(experiments: Iterable[Experiment], user_id: str, *, now: float,
                holdout: float = 0.0) -> list[tuple[Experiment, Arm]]:
    """The user's arm in every live experiment that exposes them (none while in the holdout)."""
    if in_holdout(user_id, holdout):
        return []
    return [(e, arm_of(e, user_id)) for e in experiments if e.live(now) and exposed(e, user_id)]


def allocate(exposure: float, owned: Sequence[tuple[int, int]], taken: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Bucket ranges giving `exposure` of the layer: those already `owned`, plus free ones (not
    `taken` by the layer's other live or draft experiments), first fit. `Conflict` (409) when the
    layer has too little room left."""
    want = round(exposure * BUCKETS) - sum(hi - lo for lo, hi in owned)
    if want < 0:
        raise Conflict("exposure cannot shrink: users already in the experiment would leave it")
    ranges = list(owned)
    cursor = 0
    for lo, hi in sorted([*owned, *taken]):
        if want == 0:
            break
        if lo > cursor:
            take = min(want, lo - cursor)
            ranges.append((cursor, cursor + take))
            want -= take
        cursor = max(cursor, hi)
    if want > 0 and cursor < BUCKETS:
        take = min(want, BUCKETS - cursor)
        ranges.append((cursor, cursor + take))
        want -= take
    if want > 0:
        raise Conflict("exposure: not enough room in the layer: its other experiments hold the rest of its users")
    return tuple(_merged(ranges))


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out
