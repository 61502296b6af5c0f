"""Why a user's feed looks the way it does: recent rankings per user, kept in a bounded journal."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence

from overdrive.domain.types import RankResult

_PER_USER = 20
_TOP_EXPLAINED = 5


class RankingJournal:
    """Remembers the last rankings of the most recently active users (LRU-bounded)."""

    def __init__(self, *, max_users: int = 10_000) -> None:
        self._max_users = max_users
        self._by_user: OrderedDict[str, deque[RankResult]] = OrderedDict()

    def observe(self, result: RankResult) -> None:
        history = self._by_user.pop(result.user_id, None) or deque(maxlen=_PER_USER)
        history.append(result)
        self._by_user[result.user_id] = history
        while len(self._by_user) > self._max_users:
            self._by_user.popitem(last=False)

    def forget_user(self, user_id: str) -> None:
        self._by_user.pop(user_id, None)

    def recent(self, user_id: str) -> Sequence[RankResult]:
        return list(self._by_user.get(user_id, ()))


def summarise_rankings(results: Sequence[RankResult]) -> dict:
    """Mean contribution per component over the top items, and the latest top items explained."""
    totals: dict[str, float] = {}
    n = 0
    for result in results:
        for item in result.items[:10]:
            n += 1
            for name, part in item.scores.items():
                totals[name] = totals.get(name, 0.0) + part
    strongest = sorted(((k, v / n) for k, v in totals.items()), key=lambda kv: -abs(kv[1])) if n else []
    latest = results[-1] if results else None
    return {
        "rankings_seen": len(results),
        "strongest_components": [{"component": k, "mean_contribution": round(v, 6)} for k, v in strongest],
        "latest": None
        if latest is None
        else {
            "request_id": latest.request_id,
            "strategy": latest.strategy,
            "top_items": [
                {
                    "id": item.id,
                    "rank": item.rank,
                    "score": item.score,
                    "scores": item.scores,
                    "because": max(item.scores, key=lambda k: item.scores[k]) if item.scores else None,
                }
                for item in latest.items[:_TOP_EXPLAINED]
            ],
        },
    }
