"""User behaviour figures computed from the stored signal log and live interest profiles."""

from __future__ import annotations

import time
from collections import Counter

from overdrive.analytics.insights import RankingJournal, summarise_rankings
from overdrive.domain.types import Signal
from overdrive.store.protocols import FeatureStore, ItemCatalog, SignalLog

WINDOWS_S: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "24h": 86400}
_RECENT = 1000
_REALTIME_CAP = 20_000


def _top_features(profile: dict[str, float], n: int, *, positive: bool) -> list[dict]:
    ordered = sorted(profile.items(), key=lambda kv: -kv[1] if positive else kv[1])
    keep = [(f, v) for f, v in ordered if (v > 0 if positive else v < 0)][:n]
    return [{"feature": f, "weight": round(v, 6)} for f, v in keep]


def _sessions(signals_newest_first: list[Signal], gap_s: float) -> list[list[Signal]]:
    sessions: list[list[Signal]] = []
    for s in reversed(signals_newest_first):
        if sessions and s.timestamp - sessions[-1][-1].timestamp <= gap_s:
            sessions[-1].append(s)
        else:
            sessions.append([s])
    return sessions


class UserAnalytics:
    def __init__(
        self,
        *,
        log: SignalLog,
        features: FeatureStore,
        catalog: ItemCatalog,
        journal: RankingJournal,
        session_gap_s: float,
    ) -> None:
        self._log = log
        self._features = features
        self._catalog = catalog
        self._journal = journal
        self._session_gap_s = session_gap_s

    async def profile(self, user_id: str) -> dict:
        now = time.time()
        counts = await self._log.user_signal_counts(user_id)
        recent = await self._log.user_signals(user_id, limit=_RECENT)
        interests = await self._features.user_interests(user_id, now=now)
        durations = [s.duration for s in recent if s.duration is not None]
        sessions = _sessions(recent, self._session_gap_s)
        return {
            "user_id": user_id,
            "known": bool(counts),
            "total_signals": sum(counts.values()),
            "signal_counts": counts,
            "last_signal_at": recent[0].timestamp if recent else None,
            "distinct_items_recent": len({s.content_id for s in recent}),
            "avg_duration_s": round(sum(durations) / len(durations), 3) if durations else None,
            "sessions_recent": len(sessions),
            "avg_signals_per_session": round(len(recent) / len(sessions), 3) if sessions else None,
            "top_interests": _top_features(interests, 10, positive=True),
            "negative_interests": _top_features(interests, 5, positive=False),
            "recent_window": len(recent),
        }

    async def realtime(self, user_id: str) -> dict:
        now = time.time()
        day = await self._log.user_signals(user_id, limit=_REALTIME_CAP, since=now - WINDOWS_S["24h"])
        windows = {}
        for name, span in WINDOWS_S.items():
            in_window = [s for s in day if s.timestamp >= now - span]
            windows[name] = {"count": len(in_window), "by_type": dict(Counter(s.signal_type for s in in_window))}
        sessions = _sessions(day, self._session_gap_s)
        current = sessions[-1] if sessions and now - sessions[-1][-1].timestamp <= self._session_gap_s else None
        hour = [s for s in day if s.timestamp >= now - WINDOWS_S["1h"]]
        items = await self._catalog.get([s.content_id for s in hour])
        short_term: Counter[str] = Counter()
        for s in hour:
            if s.content_id in items:
                for feat in items[s.content_id].features():
                    short_term[feat] += 1
        return {
            "user_id": user_id,
            "as_of": now,
            "windows": windows,
            "current_session": None
            if current is None
            else {
                "started_at": current[0].timestamp,
                "last_signal_at": current[-1].timestamp,
                "signals": len(current),
                "duration_s": round(current[-1].timestamp - current[0].timestamp, 3),
            },
            "short_term_interests": [{"feature": f, "signals": c} for f, c in short_term.most_common(10)],
            "truncated": len(day) >= _REALTIME_CAP,
        }

    async def insights(self, user_id: str) -> dict:
        interests = await self._features.user_interests(user_id, now=time.time())
        return {
            "user_id": user_id,
            "top_interests": _top_features(interests, 10, positive=True),
            "avoids": _top_features(interests, 5, positive=False),
            **summarise_rankings(self._journal.recent(user_id)),
        }
