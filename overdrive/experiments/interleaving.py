"""Interleaving as an experiment type: several rankers ("arms") share one feed.

Team-draft interleaving (Radlinski, Kurup & Joachims 2008) for two arms and team-draft
multileaving (Schuth et al. 2014) for more: the feed is built in rounds; in each round the arms
pick in a random order, each taking its highest-ranked item not yet in the feed, and the item is
credited to the arm that picked it. A click is credit for the arm that contributed the clicked
item; the arm with more credited clicks wins the impression.

A user's impressions are not independent, so the verdict is taken per user (as is standard): a
user prefers an arm when their credits summed over all their impressions are higher for it. Users
are counted as wins, losses and ties for every pair of arms, and the pair's p-value is the
two-sided sign test on wins against losses (ties excluded).

    feed = team_draft({"control": ranked_a, "candidate": ranked_b}, limit=20, rng=random.Random(seed))
    tally.add(user_id, credit(feed, clicked_ids))
    tally.as_dict()   # JSON-ready: wins, losses, ties, delta and p-value per pair of arms

Pure logic: no I/O, no clock; the randomness is the caller's seeded `rng`, so a replayed request
(same seed, same rankings) gets the same feed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from scipy.stats import binomtest

Rng = random.Random | np.random.Generator

__all__ = [
    "Interleaved",
    "InterleavingTally",
    "PairResult",
    "credit",
    "outcome",
    "team_draft",
]


@dataclass(frozen=True)
class Interleaved:
    """One interleaved feed: `items` in display order (no duplicates), `team` maps each of them
    to the arm credited for it, `arms` names every arm that took part (sorted), including one
    that contributed nothing (an empty ranking), so that `credit` reports it with 0."""

    items: list[str]
    team: dict[str, str]
    arms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.arms:
            object.__setattr__(self, "arms", tuple(sorted(set(self.team.values()))))

    def by_arm(self) -> dict[str, list[str]]:
        """The items each arm contributed, in feed order."""
        out: dict[str, list[str]] = {arm: [] for arm in self.arms}
        for item in self.items:
            out.setdefault(self.team[item], []).append(item)
        return out


def _below(rng: Rng) -> Callable[[int], int]:
    """`rng`'s uniform draw from range(n), for either kind of generator."""
    if isinstance(rng, random.Random):
        return rng.randrange
    if isinstance(rng, np.random.Generator):
        return lambda n: int(rng.integers(n))
    raise TypeError(f"rng must be random.Random or numpy.random.Generator, not {type(rng).__name__}")


def _shuffle(below: Callable[[int], int], seq: list[str]) -> None:
    """Shuffle in place, uniformly (Fisher-Yates), drawing only through `below`: the sequence of
    draws, and so the feed, is a function of the seed alone (one draw per round for two arms)."""
    for i in range(len(seq) - 1, 0, -1):
        j = below(i + 1)
        seq[i], seq[j] = seq[j], seq[i]


def team_draft(rankings: Mapping[str, Sequence[str]], limit: int, rng: Rng) -> Interleaved:
    """Interleave the arms' rankings (each an ordered sequence of item ids, best first) into one
    feed of at most `limit` items.

    Each round every arm that still has an item not yet in the feed picks once, in a random order
    drawn from `rng`, taking its highest-ranked such item. With two arms this is team-draft
    interleaving (its coin flip when the teams are level is the round's order); with more it is
    team-draft multileaving. While all arms have items left, the teams' sizes in every prefix of
    the feed differ by at most one. Lists may overlap, be shorter than `limit`, or repeat an id
    (only its first position counts); the feed has min(limit, |union of the lists|) items.

    The arms are taken in sorted order of their names before drawing, so the feed depends on the
    seed and the rankings, not on the mapping's insertion order."""
    below = _below(rng)
    arms = tuple(sorted(rankings))
    for arm in arms:
        if not isinstance(arm, str):
            raise TypeError(f"arm names must be str, got {arm!r}")
    items: list[str] = []
    team: dict[str, str] = {}
    if limit <= 0 or not arms:
        return Interleaved(items=items, team=team, arms=arms)
    lists = [rankings[arm] for arm in arms]
    sizes = [len(ranked) for ranked in lists]
    cursor = [0] * len(arms)  # per arm: no item before it is still free (only moves forward)

    def advance(k: int) -> bool:
        """Move arm k's cursor to its highest-ranked item not in the feed; False if none."""
        ranked, i, n = lists[k], cursor[k], sizes[k]
        while i < n and ranked[i] in team:
            i += 1
        cursor[k] = i
        return i < n

    while len(items) < limit:
        order = [k for k in range(len(arms)) if advance(k)]
        if not order:
            break
        if len(order) > 1:
            _shuffle(below, order)
        for pos, k in enumerate(order):
            # after the round's first pick, re-check: an arm that picked earlier in this round may
            # have taken this arm's item
            if pos and not advance(k):
                continue
            item = lists[k][cursor[k]]
            items.append(item)
            team[item] = arms[k]
            if len(items) >= limit:
                break
    return Interleaved(items=items, team=team, arms=arms)


def credit(interleaved: Interleaved, clicked: Iterable[str]) -> dict[str, int]:
    """Clicks per arm for one impression: each clicked feed item is one credit for the arm that
    contributed it (an item clicked twice counts once). Every arm of the feed appears (0 when it
    got none); clicks on items not in the feed are ignored."""
    out = dict.fromkeys(interleaved.arms, 0)
    for item in dict.fromkeys(clicked):
        arm = interleaved.team.get(item)
        if arm is not None:
            out[arm] = out.get(arm, 0) + 1
    return out


def outcome(credits: Mapping[str, int]) -> str | None:
    """The arm that won an impression (or a user's summed impressions): the one with strictly the
    most credited clicks; None on a tie for the most, including no clicks at all."""
    best: str | None = None
    best_n = 0
    tied = True
    for arm, n in credits.items():
        if best is None or n > best_n:
            best, best_n, tied = arm, n, False
        elif n == best_n:
            tied = True
    if best is None or tied or best_n <= 0:
        return None
    return best


@dataclass(frozen=True)
class PairResult:
    """The verdict for one pair of arms over users: `wins` users preferred `arm_a` (more summed
    credits), `losses` preferred `arm_b`, `ties` had equal credits (no clicks included).
    `delta` = (wins - losses) / users, in [-1, 1], positive when `arm_a` is preferred (0.0 with
    no users); `p_value` is the two-sided sign test on wins against losses, ties excluded
    (1.0 when there is no decided user)."""

    arm_a: str
    arm_b: str
    wins: int
    losses: int
    ties: int
    delta: float
    p_value: float

    @classmethod
    def from_counts(cls, arm_a: str, arm_b: str, wins: int, losses: int, ties: int) -> PairResult:
        if min(wins, losses, ties) < 0:
            raise ValueError("counts must be non-negative")
        users = wins + losses + ties
        decided = wins + losses
        p = float(binomtest(wins, decided, 0.5, alternative="two-sided").pvalue) if decided else 1.0
        return cls(arm_a=arm_a, arm_b=arm_b, wins=int(wins), losses=int(losses), ties=int(ties),
                   delta=(wins - losses) / users if users else 0.0, p_value=min(1.0, p))

    @property
    def users(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def preferred(self) -> str | None:
        """The arm more users preferred (whether or not significantly), None when level."""
        if self.wins == self.losses:
            return None
        return self.arm_a if self.wins > self.losses else self.arm_b

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha

    def as_dict(self) -> dict[str, Any]:
        return {"arm_a": self.arm_a, "arm_b": self.arm_b, "users": self.users, "wins": self.wins,
                "losses": self.losses, "ties": self.ties, "delta": self.delta,
                "p_value": self.p_value, "preferred": self.preferred}


class InterleavingTally:
    """Per-user credit sums and the pairwise verdicts over them.

    `add(user, credits)` once per impression (credits from `credit`); a user's credits are summed
    over their impressions before any comparison. For every pair of arms (sorted names, `arm_a` <
    `arm_b`) each user counts once as a win, a loss or a tie. Arms seen in any impression but
    missing from a user's credits count 0 for that user. Pass `arms` to fix the set up front (an
    arm that was never in a feed is then still reported)."""

    def __init__(self, arms: Iterable[str] = ()) -> None:
        self._arms: set[str] = set(arms)
        self._users: dict[Hashable, dict[str, int]] = {}
        self.impressions = 0

    def __repr__(self) -> str:
        return f"InterleavingTally(arms={self.arm_names()!r}, users={self.users}, impressions={self.impressions})"

    @classmethod
    def from_impressions(cls, impressions: Iterable[tuple[Hashable, Mapping[str, int]]],
                         arms: Iterable[str] = ()) -> InterleavingTally:
        tally = cls(arms=arms)
        for user, credits in impressions:
            tally.add(user, credits)
        return tally

    def add(self, user: Hashable, credits: Mapping[str, int]) -> None:
        sums = self._users.setdefault(user, {})
        for arm, n in credits.items():
            if n < 0:
                raise ValueError(f"negative credit {n} for arm {arm!r}")
            self._arms.add(arm)
            sums[arm] = sums.get(arm, 0) + int(n)
        self.impressions += 1

    @property
    def users(self) -> int:
        return len(self._users)

    def arm_names(self) -> list[str]:
        return sorted(self._arms)

    def user_credits(self) -> dict[Hashable, dict[str, int]]:
        """Each user's credits summed over their impressions (a copy)."""
        return {u: dict(c) for u, c in self._users.items()}

    def user_winners(self) -> dict[str | None, int]:
        """How many users each arm won outright (strictly most summed credits); None: ties."""
        out: dict[str | None, int] = {arm: 0 for arm in self.arm_names()}
        out[None] = 0
        arms = self.arm_names()
        for sums in self._users.values():
            out[outcome({arm: sums.get(arm, 0) for arm in arms})] += 1
        return out

    def pairs(self) -> list[PairResult]:
        results = []
        for a, b in combinations(self.arm_names(), 2):
            wins = losses = ties = 0
            for sums in self._users.values():
                ca, cb = sums.get(a, 0), sums.get(b, 0)
                if ca > cb:
                    wins += 1
                elif ca < cb:
                    losses += 1
                else:
                    ties += 1
            results.append(PairResult.from_counts(a, b, wins, losses, ties))
        return results

    def pair(self, arm_a: str, arm_b: str) -> PairResult:
        """The verdict for one pair, oriented as asked (`wins` are users preferring `arm_a`)."""
        for r in self.pairs():
            if (r.arm_a, r.arm_b) == (arm_a, arm_b):
                return r
            if (r.arm_a, r.arm_b) == (arm_b, arm_a):
                return PairResult(arm_a=arm_a, arm_b=arm_b, wins=r.losses, losses=r.wins, ties=r.ties,
                                  delta=-r.delta, p_value=r.p_value)
        raise KeyError((arm_a, arm_b))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (plain ints, floats and strings; no NaN): users, impressions, clicks per
        arm, outright user wins per arm, and the pairwise verdicts."""
        arms = self.arm_names()
        clicks = {arm: sum(s.get(arm, 0) for s in self._users.values()) for arm in arms}
        winners = self.user_winners()
        return {
            "type": "interleaving",
            "arms": arms,
            "users": self.users,
            "impressions": self.impressions,
            "clicks": clicks,
            "user_wins": {arm: winners[arm] for arm in arms},
            "user_ties": winners[None],
            "pairs": [r.as_dict() for r in self.pairs()],
        }
