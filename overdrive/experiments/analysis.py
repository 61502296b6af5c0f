"""An experiment's results from its exposure log and the exposed users' signals.

Attribution: a signal of a user on an item shown in one of their exposures counts for the latest
such exposure made at most `attribution_window_s` before it. A positive signal makes the shown
item *clicked* (once per item and exposure) and adds its strength to *engagement* and its duration to *dwell*;
a negative one counts as a *hide*. An exposure unit is one shown item (an impression), so CTR is clicked items /
shown items. Users are the independent units: every metric is aggregated per user first, and
intervals come from the delta method over users (`stats`). Pre-period engagement (the 14 days
before a user's first exposure) feeds CUPED. Interleaving credits each click to the arm that
contributed the item and compares arms by each user's summed credits.
"""

from __future__ import annotations

import bisect
import datetime
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from overdrive.domain.types import Signal
from overdrive.domain.weighting import SignalWeighting
from overdrive.experiments.interleaving import InterleavingTally
from overdrive.experiments.model import Experiment
from overdrive.experiments.stats import compare, cuped, mean_metric, proportion, ratio_metric, srm, summarize_arm

PRE_PERIOD_S = 14 * 86_400.0


@dataclass(slots=True)
class _User:
    arm: str | None = None
    feeds: int = 0
    impressions: int = 0
    clicks: int = 0
    engagement: float = 0.0
    hides: int = 0
    dwell: float = 0.0
    pre: float = 0.0
    first_exposure: float = float("inf")
    first_signal: float | None = None
    device_class: str = "unknown"  # of the first feed shown
    country: str = "unknown"
    credits: list[dict[str, int]] = field(default_factory=list)


def analyse(experiment: Experiment, exposures: Sequence[dict], signals: Mapping[str, Sequence[Signal]],
            weighting: SignalWeighting) -> dict[str, Any]:
    served = [e for e in exposures if not e.get("error")]
    users = _attribute(experiment, served, signals, weighting)
    out: dict[str, Any] = {"experiment": experiment.id, "name": experiment.name, "kind": experiment.kind,
                           "state": experiment.state, "users": len(users), "feeds": len(served),
                           "attribution_window_s": experiment.attribution_window_s,
                           "guardrails": _guardrails(experiment, exposures)}
    if experiment.kind == "interleaving":
        tally = InterleavingTally(arms=[a.name for a in experiment.arms])
        for user_id, user in users.items():
            for credits in user.credits:
                tally.add(user_id, credits)
        out["interleaving"] = tally.as_dict()
        return out
    out.update(_ab(experiment, users))
    return out


def _attribute(experiment: Experiment, served: Sequence[dict], signals: Mapping[str, Sequence[Signal]],
               weighting: SignalWeighting) -> dict[str, _User]:
    window = experiment.attribution_window_s
    by_user: dict[str, list[dict]] = defaultdict(list)
    for e in served:
        by_user[e["user_id"]].append(e)
    users: dict[str, _User] = {}
    for user_id, feeds in by_user.items():
        feeds.sort(key=lambda e: e["at"])
        user = users[user_id] = _User(arm=feeds[0]["arm"], feeds=len(feeds),
                                      impressions=sum(len(e["items"]) for e in feeds), first_exposure=feeds[0]["at"],
                                      device_class=feeds[0].get("device_class") or "unknown",
                                      country=feeds[0].get("country") or "unknown")
        times = [e["at"] for e in feeds]
        clicked: list[set[str]] = [set() for _ in feeds]
        for s in sorted(signals.get(user_id, ()), key=lambda s: s.timestamp):
            user.first_signal = s.timestamp if user.first_signal is None else user.first_signal
            strength = weighting.strength(s)
            if s.timestamp < user.first_exposure:
                if s.timestamp >= user.first_exposure - PRE_PERIOD_S and strength > 0:
                    user.pre += strength
                continue
            k = bisect.bisect_right(times, s.timestamp) - 1
            while k >= 0 and s.timestamp - times[k] <= window and s.content_id not in feeds[k]["items"]:
                k -= 1
            if k < 0 or s.timestamp - times[k] > window:
                continue
            if strength > 0:
                user.engagement += strength
                user.dwell += s.duration or 0.0
                clicked[k].add(s.content_id)
            elif strength < 0:
                user.hides += 1
        user.clicks = sum(len(c) for c in clicked)
        if experiment.kind == "interleaving":
            for feed, items in zip(feeds, clicked, strict=True):
                team = feed.get("team") or {}
                credits = {arm.name: 0 for arm in experiment.arms}
                for item in items:
                    if item in team:
                        credits[team[item]] += 1
                user.credits.append(credits)
    return users


def _ab(experiment: Experiment, users: Mapping[str, _User]) -> dict[str, Any]:
    arms = [a.name for a in experiment.arms]
    rows = {a: [u for u in users.values() if u.arm == a] for a in arms}
    columns = {a: _columns(rs) for a, rs in rows.items()}
    summaries = {a: summarize_arm(c["impressions"], c["clicks"], c["engagement"]) for a, c in columns.items()}
    control = experiment.control.name
    adjusted = dict(zip(arms, cuped([columns[a]["engagement"] for a in arms], [columns[a]["pre"] for a in arms]),
                        strict=True))
    comparisons = {}
    for a in arms[1:]:
        comparisons[a] = {
            "ctr": compare(summaries[control].ctr, summaries[a].ctr).as_dict(),
            "engagement_per_exposure": compare(summaries[control].engagement_per_exposure,
                                               summaries[a].engagement_per_exposure).as_dict(),
            "engagement_per_user_cuped": compare(mean_metric(adjusted[control]), mean_metric(adjusted[a])).as_dict(),
        }
    return {
        "control": control,
        "arms": {a: {**summaries[a].as_dict(), "feeds": int(columns[a]["feeds"].sum()),
                     "hides_per_exposure": ratio_metric(columns[a]["hides"], columns[a]["impressions"]).as_dict(),
                     "dwell_seconds_per_exposure": ratio_metric(columns[a]["dwell"], columns[a]["impressions"]).as_dict()}
                 for a in arms},
        "comparisons": comparisons,
        "srm": srm([len(rows[a]) for a in arms], [arm.share for arm in experiment.arms]).as_dict(),
        "cohorts": _cohorts(experiment, rows),
    }


def _columns(users: Sequence[_User]) -> dict[str, np.ndarray]:
    return {name: np.array([getattr(u, name) for u in users], dtype=np.float64)
            for name in ("impressions", "clicks", "engagement", "hides", "dwell", "pre", "feeds")}


def _cohorts(experiment: Experiment, rows: Mapping[str, Sequence[_User]]) -> dict[str, Any]:
    """CTR per arm within each cohort: new vs returning (any signal before the first exposure),
    activity before it (pre-period engagement: none, light, heavy), first-seen week, and the
    device class and country of the user's first exposure."""
    def new_or_returning(u: _User) -> str:
        return "returning" if u.first_signal is not None and u.first_signal < u.first_exposure else "new"

    def activity(u: _User) -> str:
        return "none" if u.pre == 0 else ("light" if u.pre < 10 else "heavy")

    def first_week(u: _User) -> str:
        seen = min(u.first_exposure, u.first_signal if u.first_signal is not None else u.first_exposure)
        year, week, _ = datetime.datetime.fromtimestamp(seen, datetime.timezone.utc).isocalendar()
        return f"{year}-W{week:02d}"

    control = experiment.control.name
    out: dict[str, Any] = {}
    keys = (("new_vs_returning", new_or_returning), ("activity", activity), ("first_seen_week", first_week),
            ("device_class", lambda u: u.device_class), ("country", lambda u: u.country))
    for name, key in keys:
        groups: dict[str, dict[str, Any]] = {}
        for cohort in sorted({key(u) for rs in rows.values() for u in rs}):
            ctr = {}
            for arm, rs in rows.items():
                members = [u for u in rs if key(u) == cohort]
                cols = _columns(members)
                ctr[arm] = ratio_metric(cols["clicks"], cols["impressions"])
            groups[cohort] = {"ctr": {a: e.as_dict() for a, e in ctr.items()},
                              "lift": {a: compare(ctr[control], e).as_dict() for a, e in ctr.items() if a != control}}
        out[name] = groups
    return out


def _guardrails(experiment: Experiment, exposures: Sequence[dict]) -> dict[str, Any]:
    """Per arm: the ranking latency P99 of its served feeds and its error rate (failed rankings
    of its users over all their ranking attempts), with a Wilson interval."""
    out = {}
    names = [a.name for a in experiment.arms] if experiment.kind == "ab" else ["interleaved"]
    for arm in names:
        mine = [e for e in exposures if e.get("arm") == arm]
        latencies = [e["latency_ms"] for e in mine if not e.get("error")]
        errors = sum(1 for e in mine if e.get("error"))
        out[arm] = {"latency_p99_ms": round(float(np.percentile(latencies, 99)), 3) if latencies else None,
                    "error_rate": proportion(errors, len(mine)).as_dict()}
    return out
