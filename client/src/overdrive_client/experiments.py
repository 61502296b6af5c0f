"""The service's experiment assignment, computed locally from `GET /experiments`.

A platform that logs the arm next to its own events, or picks a layout before asking for the
feed, can know a user's arm without a request per user. The rule is the service's
(`overdrive/experiments/assignment.py`), copied because it is small and pure: a user's bucket in
a layer is sha256("layer:<layer>\\x1f<user>") out of 10,000, the experiment owns bucket ranges
of its layer, and the arm comes from a second hash of the experiment's salt against the arms'
cumulative shares. `tests/client/test_client_round_trips.py` checks it agrees with the server.
The service's global holdout (`OVERDRIVE_EXPERIMENT_HOLDOUT`) is a setting, not in the
answer: pass the same share as `holdout`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable

from overdrive_client.types import Arm, Assignment, Experiment, Experiments

BUCKETS = 10_000
_ARM_RESOLUTION = 1_000_000
INTERLEAVED = "interleaved"  # the arm an interleaving experiment reports: the user sees every arm


def bucket(salt: str, user_id: str, n: int = BUCKETS) -> int:
    digest = hashlib.sha256(f"{salt}\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n


def live(experiment: Experiment, now: float) -> bool:
    starts, ends = experiment["starts_at"], experiment["ends_at"]
    return experiment["state"] == "running" and (starts is None or now >= starts) and (ends is None or now < ends)


def exposed(experiment: Experiment, user_id: str) -> bool:
    b = bucket(f"layer:{experiment['layer']}", user_id)
    return any(lo <= b < hi for lo, hi in experiment["buckets"])


def arm_of(experiment: Experiment, user_id: str) -> Arm:
    """The user's arm, were they exposed."""
    point = bucket(f"arm:{experiment['salt']}", user_id, _ARM_RESOLUTION) / _ARM_RESOLUTION
    cumulative = 0.0
    for arm in experiment["arms"]:
        cumulative += arm["share"]
        if point < cumulative:
            return arm
    return experiment["arms"][-1]


def assign(experiments: Iterable[Experiment], user_id: str, *, now: float | None = None,
           holdout: float = 0.0) -> list[Assignment]:
    """What `GET /experiments/assignment/{user_id}` answers, from the experiments' definitions."""
    if holdout > 0 and bucket("holdout", user_id) < holdout * BUCKETS:
        return []
    now = time.time() if now is None else now
    return [{"experiment": e["id"], "name": e["name"], "kind": e["kind"], "layer": e["layer"],
             "arm": INTERLEAVED if e["kind"] == "interleaving" else arm_of(e, user_id)["name"]}
            for e in experiments if live(e, now) and exposed(e, user_id)]


class LocalAssigner:
    """Assignments from a copy of the experiments, fetched again once `ttl_s` old.

    `fetch` is any callable giving the `Experiments` answer, e.g. `client.list_experiments`
    (its credential needs `experiments:read`). A change on the service is seen within `ttl_s`.
    """

    def __init__(self, fetch: Callable[[], Experiments], *, ttl_s: float = 30.0, holdout: float = 0.0) -> None:
        self._fetch = fetch
        self._ttl_s = ttl_s
        self._holdout = holdout
        self._lock = threading.Lock()
        self._experiments: list[Experiment] = []
        self._fetched_at = float("-inf")

    def experiments(self) -> list[Experiment]:
        with self._lock:
            if time.monotonic() - self._fetched_at >= self._ttl_s:
                self._experiments = list(self._fetch()["experiments"])
                self._fetched_at = time.monotonic()
            return self._experiments

    def assignment(self, user_id: str, *, now: float | None = None) -> list[Assignment]:
        return assign(self.experiments(), user_id, now=now, holdout=self._holdout)
