"""User behaviour figures, computed from the live state every replica shares."""

from __future__ import annotations

import time
from collections import Counter

from overdrive.services.insights import RankingJournal, summarise_rankings
from overdrive.domain.types import Session
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
