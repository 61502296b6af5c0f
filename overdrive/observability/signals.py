"""Signals as the dashboard and `/metrics` count them: told of every applied batch.

`SignalMonitor.on_applied` subscribes to the applier's learners (the composition root does it), so
it sees every signal this process applies — with Kafka, every signal of the topic, through the
replica's topic tail. It counts signals per type (signals/s by type is their rate) and keeps each
recently active user's last few signals for the user debugger (this process's view since it
started; forgotten on erasure). Called from the event loop or a Kafka reader's thread: it locks.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from operator import attrgetter

from overdrive.domain.types import Signal

_types = attrgetter("signal_type")


class SignalMonitor:
    def __init__(self, *, per_user: int = 20, max_users: int = 5_000) -> None:
        self._per_user = per_user
        self._max_users = max_users
        self._lock = threading.Lock()
        self._by_type: Counter[str] = Counter()
        self._recent: OrderedDict[str, deque[Signal]] = OrderedDict()

    def on_applied(self, signals: Sequence[Signal]) -> None:
        with self._lock:
            self._by_type.update(map(_types, signals))
            recent, per_user = self._recent, self._per_user
            for s in signals[-self._max_users * per_user:]:
                kept = recent.get(s.user_id)
                if kept is None:
                    kept = recent[s.user_id] = deque(maxlen=per_user)
                    if len(recent) > self._max_users:
                        recent.popitem(last=False)
                else:
                    recent.move_to_end(s.user_id)
                kept.append(s)

    def by_type(self) -> dict[str, int]:
        """Signals applied per type since the process started."""
        with self._lock:
            return dict(self._by_type)

    def recent(self, user_id: str) -> list[Signal]:
        """The user's last signals this process applied, newest first."""
        with self._lock:
            return list(reversed(self._recent.get(user_id, ())))

    def forget_user(self, user_id: str) -> None:
        with self._lock:
            self._recent.pop(user_id, None)
