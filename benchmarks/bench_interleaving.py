"""Interleaving against A/B: how many users each needs to find a planted better ranker.

A simulated world with known truth. Users have a latent vector and a click propensity of their
own (a logit; some users click a lot, most a little). Each of a user's sessions is one request
that ranks `candidates` fresh items from an effectively unbounded catalog; an item's true
relevance to the user is the dot product of their latent vectors. The user examines rank k
(0-based) with probability 1 / (k + 1) ** decay and clicks an examined item with probability
sigmoid(propensity + beta * relevance): a position-based click model. Two rankers score every
candidate: B by the true relevance plus small noise, A by the relevance plus larger noise, so B
is truly better by a planted margin (its per-user CTR in an A/B test is about 9 % higher;
printed).

For increasing numbers of users, the power (share of seeded simulations with p < 0.05 and B
preferred) of
  (a) an A/B test: half the users see A, half B; per-user CTR compared by Welch's t-test;
  (b) team-draft interleaving: every user sees A and B interleaved, through the product's code
      (`overdrive.experiments.interleaving`: team_draft, credit, InterleavingTally, outcome);
      each user's preference by their credits summed over sessions; sign test.
Then the users each needs for 80 % power (interpolated on log users between grid points) and
their ratio.

    python -m benchmarks.bench_interleaving                  # 200 simulations per size
    python -m benchmarks.bench_interleaving --sims 100 --sessions 3 --json

Each simulation draws its largest number of users once and each smaller size takes a prefix of
them (common random numbers: the curves are smoother; each size's verdict is still a test on
exactly that many users). The ratio depends on the world: it grows with the sessions per user
and the spread of users' propensities (what the A/B test suffers and interleaving's within-user
comparison cancels). On this world (200 simulations) the A/B test needed about 3,800 users and
interleaving about 330 (11.5x); with 3 sessions per user instead of 8, about 4,700 and 850
(5.5x, 100 simulations). `--sessions` and `--propensity` show it for other worlds.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.stats import ttest_ind

from overdrive.experiments.interleaving import (
    InterleavingTally,
    PairResult,
    credit,
    outcome,
    team_draft,
)

ALPHA = 0.05
TARGET_POWER = 0.8
ARMS = ("A", "B")


@dataclass(frozen=True)
class Setup:
    """The planted world (see the module's docstring)."""

    dim: int = 16                   # latent dimensions
    candidates: int = 40            # fresh items each request ranks
    limit: int = 10                 # feed length
    sessions: int = 8               # requests (impressions) per user during the experiment
    beta: float = 1.0               # click logit per unit of true relevance
    propensity_mean: float = -2.5   # users' click propensity (logit): mean ...
    propensity_sd: float = 2.0      # ... and spread over users
    decay: float = 1.0              # examination probability at rank k = 1 / (k + 1) ** decay
    noise_a: float = 1.45           # ranker A's score = relevance + noise_a * N(0, 1)
    noise_b: float = 1.0            # ranker B's score = relevance + noise_b * N(0, 1)

    def examination(self) -> np.ndarray:
        return 1.0 / np.arange(1, self.limit + 1, dtype=float) ** self.decay


@dataclass(frozen=True)
class Users:
    vectors: np.ndarray     # (users, dim) latent vectors, N(0, I)
    propensity: np.ndarray  # (users,) click propensity (logit)


def make_users(setup: Setup, n: int, rng: np.random.Generator) -> Users:
    return Users(vectors=rng.standard_normal((n, setup.dim)),
                 propensity=setup.propensity_mean + setup.propensity_sd * rng.standard_normal(n))


def sessions(setup: Setup, users: Users) -> np.ndarray:
    """(impressions,) the user of each request: every user `setup.sessions` times."""
    return np.repeat(np.arange(users.propensity.shape[0]), setup.sessions)


def relevance(setup: Setup, users: Users, who: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(impressions, candidates) true relevance u . v of each request's fresh candidates, item
    vectors v ~ N(0, I / dim): drawn from its exact distribution N(0, |u|^2 / dim), which is
    `dim` times cheaper than drawing the vectors (about N(0, 1) for a typical user)."""
    scale = np.linalg.norm(users.vectors, axis=1) / math.sqrt(setup.dim)
    scale = scale.astype(np.float32)
    return scale[who, None] * rng.standard_normal((who.size, setup.candidates), dtype=np.float32)


def top(scores: np.ndarray, limit: int) -> np.ndarray:
    """(impressions, limit) the columns each row's scores rank highest, best first."""
    part = np.argpartition(-scores, limit - 1, axis=1)[:, :limit]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def rank(setup: Setup, rel: np.ndarray, noise: float | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A ranker: (impressions, limit) candidate columns ordered by relevance + noise * N(0, 1),
    best first (`noise` a scalar, or one value per impression)."""
    noise = np.asarray(noise, dtype=np.float32).reshape(-1, 1) if np.ndim(noise) else np.float32(noise)
    return top(rel + noise * rng.standard_normal(rel.shape, dtype=np.float32), setup.limit)


def click(setup: Setup, users: Users, who: np.ndarray, rel: np.ndarray, shown: np.ndarray,
          rng: np.random.Generator) -> np.ndarray:
    """Position-based click model: (impressions, limit) booleans for the feeds `shown`
    (candidate columns in display order) that users `who` saw."""
    r = np.take_along_axis(rel, shown, axis=1)
    attract = 1.0 / (1.0 + np.exp(-(users.propensity[who, None] + setup.beta * r)))
    return rng.random(shown.shape) < attract * setup.examination()[None, : shown.shape[1]]


def ab_ctr(setup: Setup, users: Users, in_b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-user CTR (clicks per item shown over their sessions), each user served by the ranker
    of their arm (`in_b`: True for B)."""
    who = sessions(setup, users)
    rel = relevance(setup, users, who, rng)
    shown = rank(setup, rel, np.where(in_b[who], setup.noise_b, setup.noise_a), rng)
    clicks = click(setup, users, who, rel, shown, rng).sum(axis=1)
    n = users.propensity.shape[0]
    return np.bincount(who, weights=clicks, minlength=n) / (setup.sessions * setup.limit)


CANDIDATE_IDS = [f"c{j}" for j in range(1000)]


def interleave(setup: Setup, users: Users, noise: dict[str, float], rng: np.random.Generator,
               draft_rng: random.Random, *, same_ranking: bool = False) -> InterleavingTally:
    """Every user sees the arms' rankers (arm name -> ranker noise) team-draft interleaved (or
    multileaved, for more than two arms) in each session, through the product's `team_draft`,
    `credit` and `InterleavingTally`; users are keyed by their index. `same_ranking`: every arm
    serves the first arm's ranking (an A/A test with identical lists)."""
    who = sessions(setup, users)
    rel = relevance(setup, users, who, rng)
    arms = list(noise)
    ranked = {arm: rank(setup, rel, noise[arm], rng).tolist() for arm in arms[: 1 if same_ranking else None]}
    if same_ranking:
        ranked.update({arm: ranked[arms[0]] for arm in arms[1:]})
    ids = CANDIDATE_IDS[: setup.candidates]
    column = {item: j for j, item in enumerate(ids)}
    feeds = []
    shown = np.empty((who.size, setup.limit), dtype=np.int64)
    for k in range(who.size):
        feed = team_draft({arm: [ids[j] for j in ranked[arm][k]] for arm in arms}, setup.limit, draft_rng)
        feeds.append(feed)
        shown[k] = [column[item] for item in feed.items]
    clicked = click(setup, users, who, rel, shown, rng)
    tally = InterleavingTally(arms=arms)
    for u, feed, row in zip(who.tolist(), feeds, clicked.tolist()):
        tally.add(u, credit(feed, [item for item, c in zip(feed.items, row) if c]))
    return tally


def user_verdicts(tally: InterleavingTally, n_users: int, better: str = "B", worse: str = "A") -> np.ndarray:
    """Each user's verdict by their summed credits (`outcome`): +1 `better` won, -1 `worse`
    won, 0 tie; users keyed 0 .. n_users - 1."""
    sums = tally.user_credits()
    sign = {better: 1, worse: -1, None: 0}
    return np.array([sign[outcome(sums[u])] for u in range(n_users)], dtype=np.int64)


def ab_power(setup: Setup, sizes: Sequence[int], sims: int, seed: int) -> tuple[np.ndarray, float]:
    """Power of the A/B test at each total number of users (half per arm), and B's relative
    per-user CTR lift over A (pooled over the simulations at the largest size)."""
    sizes = [int(s) for s in sizes]
    hits = np.zeros(len(sizes))
    sum_a = sum_b = 0.0
    for sim in range(sims):
        rng = np.random.default_rng([seed, 1, sim])
        users = make_users(setup, max(sizes), rng)
        in_b = np.arange(max(sizes)) % 2 == 1  # users are i.i.d.: odd positions form arm B
        ctr = ab_ctr(setup, users, in_b, rng)
        sum_a += ctr[~in_b].mean()
        sum_b += ctr[in_b].mean()
        for i, n in enumerate(sizes):
            a, b = ctr[:n][~in_b[:n]], ctr[:n][in_b[:n]]
            t = ttest_ind(b, a, equal_var=False)
            hits[i] += bool(t.pvalue < ALPHA and b.mean() > a.mean())
    return hits / sims, float(sum_b / sum_a - 1.0)


def interleaving_power(setup: Setup, sizes: Sequence[int], sims: int, seed: int) -> np.ndarray:
    """Power of team-draft interleaving at each number of users (all of them see the mix)."""
    sizes = [int(s) for s in sizes]
    hits = np.zeros(len(sizes))
    for sim in range(sims):
        rng = np.random.default_rng([seed, 2, sim])
        users = make_users(setup, max(sizes), rng)
        tally = interleave(setup, users, {"A": setup.noise_a, "B": setup.noise_b}, rng,
                           random.Random(f"{seed}-{sim}"))
        verdict = user_verdicts(tally, max(sizes))
        for i, n in enumerate(sizes):
            v = verdict[:n]
            r = PairResult.from_counts("B", "A", int((v > 0).sum()), int((v < 0).sum()), int((v == 0).sum()))
            hits[i] += bool(r.p_value < ALPHA and r.wins > r.losses)
    return hits / sims


def users_for_power(sizes: Sequence[int], power: Sequence[float], target: float = TARGET_POWER) -> float | None:
    """The users at which the power curve first reaches `target`, interpolated linearly in log
    users between the grid points around the crossing; None when it never does."""
    for i, (n, p) in enumerate(zip(sizes, power)):
        if p >= target:
            if i == 0:
                return float(n)
            n0, p0 = sizes[i - 1], power[i - 1]
            f = (target - p0) / (p - p0)
            return float(math.exp(math.log(n0) + f * (math.log(n) - math.log(n0))))
    return None


AB_SIZES = (500, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 8000)
IL_SIZES = (50, 100, 150, 200, 300, 400, 500, 600)


def compare(setup: Setup, ab_sizes: Sequence[int], il_sizes: Sequence[int], sims: int, seed: int) -> dict:
    ab, lift = ab_power(setup, ab_sizes, sims, seed)
    il = interleaving_power(setup, il_sizes, sims, seed)
    n_ab = users_for_power(ab_sizes, ab)
    n_il = users_for_power(il_sizes, il)
    return {
        "setup": asdict(setup), "sims": sims, "seed": seed, "alpha": ALPHA, "target_power": TARGET_POWER,
        "ab_ctr_lift": lift,
        "ab": {"users": list(ab_sizes), "power": ab.tolist(), "users_for_power": n_ab},
        "interleaving": {"users": list(il_sizes), "power": il.tolist(), "users_for_power": n_il},
        "ratio": (n_ab / n_il) if n_ab and n_il else None,
    }


def _fmt_users(n: float | None) -> str:
    return "not reached" if n is None else f"{n:,.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sims", type=int, default=200, help="seeded simulations per size (default 200)")
    p.add_argument("--seed", type=int, default=20260101)
    p.add_argument("--sessions", type=int, help=f"sessions per user (default {Setup.sessions})")
    p.add_argument("--propensity", type=float, nargs=2, metavar=("MEAN", "SD"),
                   help=f"users' click propensity logit (default {Setup.propensity_mean} {Setup.propensity_sd})")
    p.add_argument("--ab-sizes", type=lambda s: [int(x) for x in s.split(",")], default=list(AB_SIZES),
                   help="comma-separated total users for the A/B test")
    p.add_argument("--il-sizes", type=lambda s: [int(x) for x in s.split(",")], default=list(IL_SIZES),
                   help="comma-separated users for interleaving")
    p.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = p.parse_args(argv)
    setup = Setup()
    if args.sessions is not None:
        setup = replace(setup, sessions=args.sessions)
    if args.propensity is not None:
        setup = replace(setup, propensity_mean=args.propensity[0], propensity_sd=args.propensity[1])
    t0 = time.perf_counter()
    res = compare(setup, sorted(args.ab_sizes), sorted(args.il_sizes), args.sims, args.seed)
    took = time.perf_counter() - t0
    print(f"interleaving vs A/B: {args.sims} simulations per size, alpha {ALPHA}, seed {args.seed}")
    print(f"world: {setup}")
    print(f"planted margin: B's per-user CTR in the A/B test is {100 * res['ab_ctr_lift']:+.1f} % over A's")
    print()
    print(f"{'users':>7}  {'A/B power':>9}  {'interleaving power':>18}")
    ab = dict(zip(res["ab"]["users"], res["ab"]["power"]))
    il = dict(zip(res["interleaving"]["users"], res["interleaving"]["power"]))
    for n in sorted(set(ab) | set(il)):
        a = f"{ab[n]:.3f}" if n in ab else "-"
        b = f"{il[n]:.3f}" if n in il else "-"
        print(f"{n:>7,}  {a:>9}  {b:>18}")
    print()
    ratio = "n/a" if res["ratio"] is None else f"{res['ratio']:.1f}x"
    print(f"users for {TARGET_POWER:.0%} power: A/B {_fmt_users(res['ab']['users_for_power'])}, "
          f"interleaving {_fmt_users(res['interleaving']['users_for_power'])}; ratio {ratio}")
    print(f"({took:.1f} s)")
    if args.json:
        print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
