"""User behaviour figures, computed from the live state every replica shares."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence

from overdrive.domain.context import of_signal
from overdrive.domain.types import Session, Signal, UserModel
from overdrive.services.insights import RankingJournal, summarise_rankings
from overdrive.domain.windows import WINDOWS_S
from overdrive.store.protocols import FeatureStore
from overdrive.stream.protocols import SignalBus

_SETTLE_TIMEOUT_S = 0.5


def _top_features(profile: dict[str, float], n: int, *, positive: bool) -> list[dict]:
    ordered = sorted(profile.items(), key=lambda kv: -kv[1] if positive else kv[1])
    keep = [(f, v) for f, v in ordered if (v > 0 if positive else v < 0)][:n]
    return [{"feature": f, "weight": round(v, 6)} for f, v in keep]


def _session(session: Session | None, now: float, gap_s: float) -> dict | None:
    if session is None:
        return None
    return {
        "started_at": session.started_at,
        "last_signal_at": session.last_signal_at,
        "signals": session.signals,
        "duration_s": round(session.last_signal_at - session.started_at, 3),
        "active": now - session.last_signal_at <= gap_s,
    }


def _shares(weights: Mapping[str, float], n: int | None = None) -> dict[str, float]:
    """Each key's share of the total, largest first (the top `n`)."""
    total = sum(v for v in weights.values() if v > 0)
    ordered = sorted(((k, v) for k, v in weights.items() if v > 0), key=lambda kv: -kv[1])[:n]
    return {k: round(v / total, 4) for k, v in ordered} if total else {}


def _drift(a: Mapping[str, float], b: Mapping[str, float]) -> float | None:
    """1 - cosine between two interest profiles (0: same tastes, 1: unrelated); None if either is empty."""
    dot = sum(v * b.get(k, 0.0) for k, v in a.items())
    norms = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return round(1.0 - dot / norms, 4) if norms else None


def _habits(model: UserModel) -> dict:
    devices = _shares(model.devices)
    zones = _shares(model.timezones)
    hours: Counter[int] = Counter()
    weekdays: Counter[int] = Counter()
    for key, v in model.hours.items():
        weekday, hour = map(int, key.split(":"))
        hours[hour] += v
        weekdays[weekday] += v
    return {
        "devices": devices,
        "primary_device": next(iter(devices), None),
        "timezones": zones,
        "timezone": next(iter(zones), None),
        "active_hours_local": _shares({str(h): v for h, v in hours.items()}, 6),
        "active_weekdays_local": _shares({str(d): v for d, v in weekdays.items()}),  # 0 = Monday
        "active_slots_local": _shares(model.hours, 10),  # "<weekday>:<hour>"
        "locations": _shares({k: v for k, v in model.locations.items() if "/" not in k}),
        "cities": _shares({k: v for k, v in model.locations.items() if "/" in k}, 10),
        "context_preferences": {
            ctx: _top_features(profile, 5, positive=True)
            for ctx, profile in sorted(model.contexts.items(), key=lambda kv: -sum(map(abs, kv[1].values())))
            if any(v > 0 for v in profile.values())
        },
    }


def _evolution(model: UserModel, long: Mapping[str, float], short: Mapping[str, float]) -> dict:
    return {
        "medium_term_interests": _top_features(model.medium_interests, 10, positive=True),
        "drift": {"short_vs_long": _drift(short, long), "medium_vs_long": _drift(model.medium_interests, long),
                  "short_vs_medium": _drift(short, model.medium_interests)},
        "timeline": [{"week": week, "top_interests": _top_features(model.weeks[week], 5, positive=True)}
                     for week in sorted(model.weeks)],
    }


def _session_context(recent: Sequence[Signal]) -> dict | None:
    """The context of the user's latest signal that carried one."""
    for signal in recent:
        context = of_signal(signal.metadata) if signal.metadata else None
        if context is not None:
            local = context.local(signal.timestamp)
            return {**context.as_dict(), "daypart": context.daypart(signal.timestamp),
                    "local_time": local.isoformat() if local is not None else None, "at": signal.timestamp}
    return None


class UserAnalytics:
    def __init__(self, *, features: FeatureStore, bus: SignalBus, journal: RankingJournal, session_gap_s: float) -> None:
        self._features = features
        self._bus = bus
        self._journal = journal
        self._session_gap_s = session_gap_s

    async def profile(self, user_id: str) -> dict:
        await self._bus.settled(user_id, timeout_s=_SETTLE_TIMEOUT_S)  # read your own writes
        now = time.time()
        activity = await self._features.user_activity(user_id, now=now)
        interests = await self._features.user_interests(user_id, now=now)
        short = await self._features.user_interests(user_id, now=now, term="short")
        model = await self._features.user_model(user_id, now=now)
        recent = activity.recent
        durations = [s.duration for s in recent if s.duration is not None]
        return {
            "user_id": user_id,
            "known": bool(activity.signal_counts),
            "total_signals": sum(activity.signal_counts.values()),
            "signal_counts": activity.signal_counts,
            "last_signal_at": recent[0].timestamp if recent else None,
            "sessions_total": activity.sessions_total,
            "recent_window": len(recent),
            "distinct_items_recent": len({s.content_id for s in recent}),
            "avg_duration_s": round(sum(durations) / len(durations), 3) if durations else None,
            "active_hours_utc": dict(Counter(int(s.timestamp // 3600 % 24) for s in recent).most_common(5)),
            "top_interests": _top_features(interests, 10, positive=True),
            "negative_interests": _top_features(interests, 5, positive=False),
            **_habits(model),
            "interest_evolution": _evolution(model, interests, short),
        }

    async def realtime(self, user_id: str) -> dict:
        await self._bus.settled(user_id, timeout_s=_SETTLE_TIMEOUT_S)  # read your own writes
        now = time.time()
        activity = await self._features.user_activity(user_id, now=now)
        windows = await self._features.windows("user", user_id, now=now)
        short = await self._features.user_interests(user_id, now=now, term="short")
        hour = [s for s in activity.recent if s.timestamp >= now - WINDOWS_S["1h"]]
        return {
            "user_id": user_id,
            "as_of": now,
            "windows": windows,
            "last_hour_by_type": dict(Counter(s.signal_type for s in hour)),
            "session": _session(activity.session, now, self._session_gap_s),
            "context": _session_context(activity.recent),
            "short_term_interests": _top_features(short, 10, positive=True),
        }

    async def insights(self, user_id: str) -> dict:
        await self._bus.settled(user_id, timeout_s=_SETTLE_TIMEOUT_S)  # read your own writes
        now = time.time()
        interests = await self._features.user_interests(user_id, now=now)
        short = await self._features.user_interests(user_id, now=now, term="short")
        return {
            "user_id": user_id,
            "top_interests": _top_features(interests, 10, positive=True),
            "short_term_interests": _top_features(short, 5, positive=True),
            "avoids": _top_features(interests, 5, positive=False),
            **summarise_rankings(self._journal.recent(user_id)),
        }
